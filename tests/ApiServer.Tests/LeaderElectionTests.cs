using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;

namespace Vmk.ApiServer.Tests;

/// <summary>The operator elects its leader with KubernetesClient's LeaderElector over a Lease on this server.</summary>
public sealed class LeaderElectionTests : IClassFixture<ServerFixture>
{
    private readonly TestServer _server;

    public LeaderElectionTests(ServerFixture fixture)
    {
        _server = fixture.Server;
    }

    private LeaderElector Elector(string identity)
        => new(new LeaderElectionConfig(new LeaseLock(_server.Client(), "kube-system", "vm-operator-test", identity))
        {
            LeaseDuration = TimeSpan.FromSeconds(3),
            RenewDeadline = TimeSpan.FromSeconds(2),
            RetryPeriod = TimeSpan.FromMilliseconds(250),
        });

    [Fact]
    public async Task One_candidate_leads_and_another_takes_over_when_it_stops()
    {
        using var first = Elector("op-a");
        using var second = Elector("op-b");
        var firstLeads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondLeads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondSawLeader = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        first.OnStartedLeading += () => firstLeads.TrySetResult();
        second.OnStartedLeading += () => secondLeads.TrySetResult();
        second.OnNewLeader += leader => secondSawLeader.TrySetResult(leader);

        using var stopFirst = new CancellationTokenSource();
        using var stopSecond = new CancellationTokenSource();
        var firstRun = first.RunUntilLeadershipLostAsync(stopFirst.Token);
        await firstLeads.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var secondRun = second.RunUntilLeadershipLostAsync(stopSecond.Token);
        Assert.Equal("op-a", await secondSawLeader.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(secondLeads.Task.IsCompleted);

        await stopFirst.CancelAsync();
        await Stopped(firstRun);
        await secondLeads.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await stopSecond.CancelAsync();
        await Stopped(secondRun);
    }

    private static async Task Stopped(Task run)
    {
        try
        {
            await run.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (OperationCanceledException)
        {
            // Either ending is a clean stop.
        }
    }
}
