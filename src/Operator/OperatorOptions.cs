using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Vmk.Operator;

/// <summary>
/// vm-operator's command line (the flags the Helm chart passes, charts/vmkernel-operator/templates/operator-deployment.yaml).
/// Accepts <c>--flag=value</c> and <c>--flag value</c>; booleans also bare (<c>--leader-elect</c>). A bad flag is an
/// <see cref="OptionsException"/> whose message names it.
/// </summary>
public sealed class OperatorOptions
{
    public bool LeaderElect { get; private set; } = true;

    public string LeaderElectionNamespace { get; private set; } = "vmk-system";

    public string LeaderElectionName { get; private set; } = "vm-operator";

    public TimeSpan LeaseDuration { get; private set; } = TimeSpan.FromSeconds(15);

    public TimeSpan RenewDeadline { get; private set; } = TimeSpan.FromSeconds(10);

    public TimeSpan RetryPeriod { get; private set; } = TimeSpan.FromSeconds(2);

    public IPEndPoint MetricsListen { get; private set; } = new(IPAddress.Any, 8080);

    public IPEndPoint HealthListen { get; private set; } = new(IPAddress.Any, 8081);

    /// <summary>ca.crt, tls.crt, tls.key: the operator's client certificate for mutual TLS to vmkerneld.</summary>
    public string TlsDirectory { get; private set; } = "/etc/vmkernel/tls";

    /// <summary>The DNS name the daemons' certificates carry (they are dialled by address).</summary>
    public string? VmkerneldServerName { get; private set; }

    public LogLevel LogLevel { get; private set; } = LogLevel.Information;

    public string? Kubeconfig { get; private set; } = Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } k ? k : null;

    /// <summary>A Host whose heartbeat is older than this is marked NotReady.</summary>
    public TimeSpan HostGracePeriod { get; private set; } = TimeSpan.FromSeconds(40);

    public int Workers { get; private set; } = 4;

    public const string Usage = """
        usage: vm-operator [flags]
          --kubeconfig PATH                 kubeconfig (default: $KUBECONFIG, else the in-cluster service account)
          --leader-elect[=true|false]       run controllers only while holding the Lease (default true)
          --leader-election-namespace NS    namespace of the Lease (default vmk-system)
          --leader-election-name NAME       name of the Lease (default vm-operator)
          --lease-duration 15s              --renew-deadline 10s   --retry-period 2s
          --metrics-listen ADDR:PORT        Prometheus /metrics (default 0.0.0.0:8080; port 0 picks one)
          --health-listen ADDR:PORT         /healthz and /readyz (default 0.0.0.0:8081; port 0 picks one)
          --tls-dir DIR                     ca.crt, tls.crt, tls.key for mutual TLS to vmkerneld (default /etc/vmkernel/tls)
          --vmkerneld-server-name NAME      the name the daemons' certificates carry
          --host-grace-period 40s           a Host whose heartbeat is older is marked NotReady
          --workers N                       concurrent reconciles per controller (default 4)
          --log-level LEVEL                 Trace, Debug, Information, Warning, Error (default Information)
        """;

    public static OperatorOptions Parse(IReadOnlyList<string> args)
    {
        var o = new OperatorOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new OptionsException($"unexpected argument '{arg}': flags start with --");
            }
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var flag = eq > 0 ? arg[..eq] : arg;
            string? inline = eq > 0 ? arg[(eq + 1)..] : null;
            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    throw new OptionsException($"{flag} needs a value");
                }
                return args[++i];
            }
            switch (flag)
            {
                case "--leader-elect":
                    o.LeaderElect = inline is null || Bool(flag, inline);
                    break;
                case "--leader-election-namespace":
                    o.LeaderElectionNamespace = NonEmpty(flag, Value());
                    break;
                case "--leader-election-name":
                    o.LeaderElectionName = NonEmpty(flag, Value());
                    break;
                case "--lease-duration":
                    o.LeaseDuration = Duration(flag, Value());
                    break;
                case "--renew-deadline":
                    o.RenewDeadline = Duration(flag, Value());
                    break;
                case "--retry-period":
                    o.RetryPeriod = Duration(flag, Value());
                    break;
                case "--metrics-listen":
                    o.MetricsListen = Endpoint(flag, Value());
                    break;
                case "--health-listen":
                    o.HealthListen = Endpoint(flag, Value());
                    break;
                case "--tls-dir":
                    o.TlsDirectory = NonEmpty(flag, Value());
                    break;
                case "--vmkerneld-server-name":
                    o.VmkerneldServerName = Value();
                    break;
                case "--log-level":
                    var level = Value();
                    o.LogLevel = Enum.TryParse<LogLevel>(level, ignoreCase: true, out var l) && Enum.IsDefined(l)
                        ? l
                        : throw new OptionsException($"--log-level '{level}' is not one of Trace, Debug, Information, Warning, Error, Critical");
                    break;
                case "--kubeconfig":
                    o.Kubeconfig = NonEmpty(flag, Value());
                    break;
                case "--host-grace-period":
                    o.HostGracePeriod = Duration(flag, Value());
                    break;
                case "--workers":
                    var w = Value();
                    o.Workers = int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and <= 64
                        ? n
                        : throw new OptionsException($"--workers '{w}' is not a number from 1 to 64");
                    break;
                default:
                    throw new OptionsException($"unknown flag {flag}");
            }
        }
        if (o.LeaderElect && !(o.RetryPeriod < o.RenewDeadline && o.RenewDeadline < o.LeaseDuration))
        {
            throw new OptionsException($"--retry-period ({o.RetryPeriod.TotalSeconds}s) < --renew-deadline ({o.RenewDeadline.TotalSeconds}s) < --lease-duration ({o.LeaseDuration.TotalSeconds}s) must hold");
        }
        if (o.LeaseDuration.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new OptionsException($"--lease-duration must be whole seconds (was {o.LeaseDuration.TotalSeconds}s): the Lease stores seconds");
        }
        return o;
    }

    private static string NonEmpty(string flag, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new OptionsException($"{flag} must not be empty") : value;

    private static bool Bool(string flag, string value) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new OptionsException($"{flag} '{value}' is not true or false"),
    };

    /// <summary>Go-style durations as the chart writes them: 15s, 500ms, 2m, 1h30m; a bare number is seconds.</summary>
    internal static TimeSpan Duration(string flag, string value)
    {
        var total = TimeSpan.Zero;
        var rest = value.Trim();
        if (double.TryParse(rest, NumberStyles.Float, CultureInfo.InvariantCulture, out var bare) && bare > 0)
        {
            return TimeSpan.FromSeconds(bare);
        }
        var any = false;
        while (rest.Length > 0)
        {
            var n = 0;
            while (n < rest.Length && (char.IsAsciiDigit(rest[n]) || rest[n] == '.'))
            {
                n++;
            }
            var u = n;
            while (u < rest.Length && char.IsAsciiLetter(rest[u]))
            {
                u++;
            }
            if (n == 0 || !double.TryParse(rest[..n], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            {
                throw new OptionsException($"{flag} '{value}' is not a duration (e.g. 15s, 500ms, 2m)");
            }
            total += rest[n..u] switch
            {
                "ms" => TimeSpan.FromMilliseconds(number),
                "s" => TimeSpan.FromSeconds(number),
                "m" => TimeSpan.FromMinutes(number),
                "h" => TimeSpan.FromHours(number),
                _ => throw new OptionsException($"{flag} '{value}' is not a duration (units: ms, s, m, h)"),
            };
            any = true;
            rest = rest[u..];
        }
        return any && total > TimeSpan.Zero ? total : throw new OptionsException($"{flag} '{value}' must be a positive duration (e.g. 15s)");
    }

    private static IPEndPoint Endpoint(string flag, string value)
    {
        var text = value.StartsWith(':') ? "0.0.0.0" + value : value;
        return IPEndPoint.TryParse(text, out var e) && text.Contains(':', StringComparison.Ordinal)
            ? e
            : throw new OptionsException($"{flag} '{value}' is not address:port (e.g. 0.0.0.0:8080, 127.0.0.1:0)");
    }
}
