using Microsoft.Win32.SafeHandles;

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// Optional companion of <see cref="IBlockDevice"/> for devices whose bytes sit in a regular file at known offsets
/// (a plain image file; a VMFS virtual disk's allocated blocks in the datastore file). The NBD server uses it to send
/// read data with sendfile(2), straight from the page cache to the socket, instead of copying it through a buffer.
/// </summary>
public interface IFileBackedBlockDevice : IBlockDevice
{
    /// <summary>
    /// Maps the device range [<paramref name="offset"/>, +<paramref name="length"/>) to one contiguous run of one file.
    /// False when the range is not stored that way (a hole of a thin disk, a range crossing blocks stored apart);
    /// the caller then falls back to <see cref="IBlockDevice.Read"/>. The handle stays owned by the device and valid
    /// until it is disposed.
    /// </summary>
    bool TryMapToFile(long offset, long length, out SafeFileHandle file, out long fileOffset);
}
