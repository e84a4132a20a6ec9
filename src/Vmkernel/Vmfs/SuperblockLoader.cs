namespace Vmk.Vmkernel.Vmfs;

/// <summary>Finds and checks the superblock of a device, telling every "not usable" case apart.</summary>
internal static class SuperblockLoader
{
    public static Superblock Load(VmfsDevice device)
    {
        if (device.Length < 8192)
        {
            throw new VmfsException(VmfsErrorCode.NotADatastore,
                $"'{device.Path}' is {device.Length} bytes: too small to hold a VMFS datastore. Check the path.");
        }

        var head = new byte[8192];
        device.Read(0, head);
        Superblock sb;
        try
        {
            sb = Superblock.Read(head, Superblock.PrimaryOffset, device.Path);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
        {
            var backupOk = TryReadBackup(head, device.Path) is not null;
            throw new VmfsException(VmfsErrorCode.Corrupt,
                e.Message + (backupOk ? " The backup superblock at byte 4096 is intact: `vmctl ds fsck --repair` restores the primary from it." : " The backup superblock at byte 4096 is damaged too."))
            {
                Structure = e.Structure,
                Offset = e.Offset,
            };
        }

        if (sb.State == Superblock.StateFormatting)
        {
            throw new VmfsException(VmfsErrorCode.HalfFormatted,
                $"'{device.Path}' is half-formatted: a format was interrupted before it finished. Run `vmctl ds format --force {device.Path}` again.");
        }

        if (device.Length < sb.DeviceSize)
        {
            throw new VmfsException(VmfsErrorCode.TooSmall,
                $"'{device.Path}' is {device.Length} bytes but was formatted as {sb.DeviceSize} bytes; the device shrank or is the wrong one.");
        }

        return sb;
    }

    public static Superblock? TryReadBackup(byte[] head, string path)
    {
        try
        {
            var backup = Superblock.Read(head.AsSpan(4096), Superblock.BackupOffset, path);
            return backup.State == Superblock.StateReady ? backup : null;
        }
        catch (VmfsException)
        {
            return null;
        }
    }
}
