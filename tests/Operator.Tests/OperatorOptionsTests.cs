namespace Vmk.Operator.Tests;

public sealed class OperatorOptionsTests
{
    [Fact]
    public void The_charts_flags_parse()
    {
        var o = OperatorOptions.Parse([
            "--leader-elect=true", "--leader-election-namespace=vmk", "--leader-election-name=vm-operator",
            "--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s",
            "--metrics-listen=0.0.0.0:8080", "--health-listen=0.0.0.0:8081", "--tls-dir=/etc/vmkernel/tls",
            "--vmkerneld-server-name=vmkerneld.vmk.svc", "--log-level=Debug", "--kubeconfig", "/tmp/kc"]);
        Assert.True(o.LeaderElect);
        Assert.Equal("vmk", o.LeaderElectionNamespace);
        Assert.Equal(TimeSpan.FromSeconds(15), o.LeaseDuration);
        Assert.Equal(TimeSpan.FromSeconds(2), o.RetryPeriod);
        Assert.Equal(8081, o.HealthListen.Port);
        Assert.Equal("vmkerneld.vmk.svc", o.VmkerneldServerName);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, o.LogLevel);
        Assert.Equal("/tmp/kc", o.Kubeconfig);
        Assert.False(OperatorOptions.Parse(["--leader-elect=false"]).LeaderElect);
        Assert.Equal(TimeSpan.FromSeconds(90), OperatorOptions.Duration("--x", "1m30s"));
        Assert.Equal(TimeSpan.FromMilliseconds(500), OperatorOptions.Duration("--x", "500ms"));
    }

    [Theory]
    [InlineData("--lease-duration=soon", "--lease-duration")]
    [InlineData("--metrics-listen=8080", "--metrics-listen")]
    [InlineData("--log-level=Loud", "--log-level")]
    [InlineData("--frobnicate", "--frobnicate")]
    [InlineData("--tls-dir", "--tls-dir")]
    [InlineData("--retry-period=20s", "--retry-period")]
    public void A_bad_flag_is_named(string arg, string named)
    {
        var e = Assert.Throws<OptionsException>(() => OperatorOptions.Parse([arg]));
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }
}
