using Grpc.Core;
using Grpc.Core.Interceptors;
using Vmk.NodeDaemon.Agent;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Qemu.Qmp;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// The last line of error mapping: whatever a handler did not turn into a status itself becomes one with the
/// exception's message (VMkernel messages are written for people), never a bare "Exception was thrown by handler".
/// </summary>
public sealed class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Map(e, context);
        }
    }

    private RpcException Map(Exception e, ServerCallContext context)
    {
        var (code, message) = e switch
        {
            OperationCanceledException when context.CancellationToken.IsCancellationRequested => (StatusCode.Cancelled, "the call was cancelled by the caller"),
            AdmissionException => (StatusCode.ResourceExhausted, e.Message),
            WatcherTooSlowException => (StatusCode.Aborted, e.Message),
            VmkernelException => (StatusCode.FailedPrecondition, e.Message),
            QmpException => (StatusCode.Unavailable, $"QEMU did not answer as expected: {e.Message}; retry, or kill the VM if it keeps failing"),
            _ => (StatusCode.Internal, $"vmkerneld failed: {e.GetType().Name}: {e.Message}; see the daemon's log"),
        };
        if (code == StatusCode.Internal)
        {
            logger.LogError(e, "{Method} failed", context.Method);
        }
        else
        {
            logger.LogInformation("{Method}: {Code}: {Message}", context.Method, code, message);
        }
        return new RpcException(new Status(code, message));
    }
}
