using System.Text.Json.Nodes;
using Google.Protobuf.WellKnownTypes;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Migrations;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>spec.policy of a VirtualMachineMigration as the daemons receive it (no processes: pure mapping).</summary>
public sealed class MigrationPolicyTests
{
    [Fact]
    public void A_policy_maps_quantities_and_durations_and_an_empty_one_gets_the_CRD_defaults()
    {
        var given = Migration(new JsonObject { ["bandwidth"] = "64Mi", ["downtimeLimit"] = "50ms", ["autoConverge"] = false, ["encrypted"] = false, ["timeout"] = "1m30s" });
        var empty = Migration(null);

        var p = MigrationPolicies.Build(given);
        var d = MigrationPolicies.Build(empty);

        Assert.Equal(64L << 20, p.BandwidthBytesPerSecond);
        Assert.Equal(50, p.DowntimeLimitMs);
        Assert.False(p.AutoConverge);
        Assert.True(p.DisableTls);
        Assert.Equal(90, p.TimeoutSeconds);
        Assert.Equal(0, d.BandwidthBytesPerSecond);
        Assert.Equal(30, d.DowntimeLimitMs);
        Assert.True(d.AutoConverge);
        Assert.False(d.DisableTls); // encrypted unless a policy turns it off
        Assert.Equal(600, d.TimeoutSeconds);
    }

    [Theory]
    [InlineData("300ms", 300)]
    [InlineData("2s", 2000)]
    [InlineData("1h2m", 3720000)]
    [InlineData("1.5s", 1500)]
    public void Durations_in_the_CRD_pattern_parse(string text, long ms) => Assert.Equal(TimeSpan.FromMilliseconds(ms), MigrationPolicies.Duration(text));

    [Theory]
    [InlineData("5 minutes")]
    [InlineData("10")]
    public void Anything_else_is_no_duration(string text) => Assert.Null(MigrationPolicies.Duration(text));

    [Fact]
    public void The_downtime_is_the_source_pause_to_the_target_resume_unless_the_hosts_clocks_disagree()
    {
        var paused = new DateTimeOffset(2026, 11, 28, 16, 0, 0, TimeSpan.Zero);
        var completed = new Vmk.NodeDaemon.Protos.MigrationProgress { Phase = "completed", DowntimeMs = 12, PausedAt = Timestamp.FromDateTimeOffset(paused) };
        Vmk.NodeDaemon.Protos.Vm Resumed(double ms) => new() { Status = new Vmk.NodeDaemon.Protos.VmStatus { Since = Timestamp.FromDateTimeOffset(paused.AddMilliseconds(ms)) } };

        Assert.Equal(38, VirtualMachineMigrationReconciler.GuestPauseMs(completed, Resumed(37.2)));
        // A resume "before" QEMU's own stop-and-copy ended: the clocks disagree, the caller sums what each side measured.
        Assert.Null(VirtualMachineMigrationReconciler.GuestPauseMs(completed, Resumed(5)));
        Assert.Null(VirtualMachineMigrationReconciler.GuestPauseMs(new Vmk.NodeDaemon.Protos.MigrationProgress { Phase = "completed", DowntimeMs = 12 }, Resumed(37)));
        Assert.Null(VirtualMachineMigrationReconciler.GuestPauseMs(completed, null));
    }

    private static VirtualMachineMigration Migration(JsonObject? policy) => new()
    {
        Spec = policy is null ? new JsonObject { ["vmName"] = "x" } : new JsonObject { ["vmName"] = "x", ["policy"] = policy },
    };
}
