using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Qemu.Accel;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Owns the host's one <see cref="VmkernelHost"/>. Opening it re-adopts every VM a previous vmkerneld left running;
/// stopping lets go of them without stopping them, so a restart or upgrade of the daemon never stops a VM.
/// Hosted services start before Kestrel accepts calls, so no handler ever sees the VMkernel missing.
/// </summary>
public sealed class VmkernelRunner(IOptions<DaemonOptions> options, ILoggerFactory loggerFactory, VmEventHub events) : IHostedService
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<VmkernelRunner>();
    private VmkernelHost? _host;

    public VmkernelHost Host => _host ?? throw new InvalidOperationException("the VMkernel is not open yet");

    public DateTimeOffset Started { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!Enum.TryParse<AcceleratorMode>(o.Accelerator, ignoreCase: true, out var accel))
        {
            throw new ArgumentException($"accelerator '{o.Accelerator}' is not one of auto, kvm, tcg");
        }
        _host = await VmkernelHost.OpenAsync(new VmkernelOptions
        {
            StateDirectory = o.StateDirectory,
            Accelerator = accel,
            QemuUser = o.QemuUser,
            UseCgroups = o.UseCgroups,
            HostName = o.EffectiveHostName,
            DatastoreKillTimer = true,
            MigrationAddress = o.EffectiveMigrationAddress(),
            MigrationTls = MigrationTlsFrom(o.TlsDirectory),
        }, loggerFactory, cancellationToken);
        Started = DateTimeOffset.UtcNow;
        foreach (var vm in _host.VirtualMachines)
        {
            events.Attach(vm);
        }
        _logger.LogInformation("VMkernel open on {StateDirectory}: {Count} VMs adopted, accelerator {Accelerator}",
            o.StateDirectory, _host.VirtualMachines.Count, _host.Accelerator.Accelerator);
    }

    /// <summary>
    /// Live migrations are encrypted with the daemon's own TLS material: its CA, its server certificate (the target
    /// side) and the client certificate (the source side). Without a client certificate only unencrypted
    /// migrations (a policy's explicit choice) are possible.
    /// </summary>
    private static Vmk.Vmkernel.Migration.MigrationTlsFiles? MigrationTlsFrom(string directory)
    {
        string F(string name) => Path.Combine(directory, name);
        var files = new Vmk.Vmkernel.Migration.MigrationTlsFiles(
            F(Vmk.NodeDaemon.Client.Security.TlsFiles.CaCertificate), F(Vmk.NodeDaemon.Client.Security.TlsFiles.Certificate), F(Vmk.NodeDaemon.Client.Security.TlsFiles.Key),
            F(Vmk.NodeDaemon.Client.Security.TlsFiles.ClientCertificate), F(Vmk.NodeDaemon.Client.Security.TlsFiles.ClientKey));
        return new[] { files.CaCertificate, files.ServerCertificate, files.ServerKey, files.ClientCertificate, files.ClientKey }.All(File.Exists) ? files : null;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_host is not null)
        {
            // Lets go of QEMU processes without stopping them; the next vmkerneld adopts them.
            await _host.DisposeAsync();
            _logger.LogInformation("VMkernel closed; VMs keep running");
        }
    }
}
