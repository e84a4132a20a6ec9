using System.Text.Json;
using Vmk.Vmkernel.Migration;

namespace Vmk.Vmkernel.Tests.Migration;

/// <summary>Reading QEMU 7.2's query-migrate replies (shapes taken from the QMP schema's MigrationInfo).</summary>
public sealed class MigrationProgressTests
{
    [Fact]
    public void An_active_migration_reports_bytes_rate_and_iteration()
    {
        var p = Parse("""
            {"status":"active","total-time":812,"expected-downtime":300,"setup-time":3,
             "ram":{"transferred":104857600,"remaining":33554432,"total":268435456,"dirty-pages-rate":1200,"dirty-sync-count":2,"mbps":980.1}}
            """);

        Assert.Equal("active", p.Phase);
        Assert.False(p.IsTerminal);
        Assert.Equal(104857600, p.TransferredBytes);
        Assert.Equal(33554432, p.RemainingBytes);
        Assert.Equal(1200, p.DirtyPagesRate);
        Assert.Equal(2, p.Iteration);
        Assert.Equal(TimeSpan.FromMilliseconds(812), p.TotalTime);
        Assert.Null(p.Downtime);
    }

    [Fact]
    public void A_completed_migration_on_the_source_has_its_downtime()
    {
        var p = Parse("""{"status":"completed","total-time":455,"downtime":7,"ram":{"transferred":9000000,"remaining":0,"dirty-sync-count":3}}""");

        Assert.True(p.IsTerminal);
        Assert.True(p.HasSourceFigures);
        Assert.Equal(TimeSpan.FromMilliseconds(7), p.Downtime);
    }

    [Fact]
    public void The_incoming_completion_of_an_earlier_migration_is_told_apart_from_the_sources()
    {
        // What a QEMU that was itself migrated in answers before its own outgoing migration has started.
        var p = Parse("""{"status":"completed"}""");

        Assert.True(p.IsTerminal);
        Assert.False(p.HasSourceFigures);
    }

    [Fact]
    public void A_completion_whose_figures_qemu_has_not_computed_yet_has_none()
    {
        // QEMU 7.2 switches to "completed" (and sends the event) before its migration thread computes the times.
        var p = Parse("""{"status":"completed","total-time":0,"downtime":0,"ram":{"transferred":9000000,"remaining":0,"dirty-sync-count":3}}""");

        Assert.True(p.IsTerminal);
        Assert.False(p.HasSourceFigures);
    }

    [Fact]
    public void A_failure_carries_qemus_reason()
    {
        var p = Parse("""{"status":"failed","error-desc":"Unable to write to socket: Connection reset by peer"}""");

        Assert.True(p.IsTerminal);
        Assert.Equal("Unable to write to socket: Connection reset by peer", p.Error);
    }

    private static MigrationProgress Parse(string json) => MigrationProgress.FromQueryMigrate(JsonDocument.Parse(json).RootElement);
}
