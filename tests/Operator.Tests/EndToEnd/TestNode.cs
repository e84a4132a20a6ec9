namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>One simulated host: its name, gRPC port (kept across daemon restarts), state directory and daemon process.</summary>
public sealed record TestNode(string Name, int Port, string StateDirectory, ChildProcess Daemon);
