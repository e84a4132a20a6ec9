using Grpc.Core;

namespace Vmk.Operator.Controllers.Common;

/// <summary>Deadlines and error text for calls to the daemons.</summary>
public static class Rpc
{
    /// <summary>Most calls answer at once; mounting (heartbeat join, host-id lease) and powering off can take a while.</summary>
    public static DateTime Deadline(int seconds = 30) => DateTime.UtcNow.AddSeconds(seconds);

    public static bool IsNotFound(Exception e) => e is RpcException { StatusCode: StatusCode.NotFound };

    /// <summary>A daemon's error message as a person should read it (the daemon's messages name the object and the fix).</summary>
    public static string Describe(Exception e) => e switch
    {
        RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded } r => $"vmkerneld unreachable ({r.StatusCode}: {r.Status.Detail})",
        RpcException r => string.IsNullOrEmpty(r.Status.Detail) ? r.StatusCode.ToString() : r.Status.Detail,
        _ => e.Message,
    };
}
