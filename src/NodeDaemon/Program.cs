// vmkerneld: the per-host daemon. Its gRPC API, Host object and metrics arrive with the node-daemon issue.
Console.Error.WriteLine("vmkerneld: not yet implemented beyond the VMkernel library; use `vmctl vm run` for now.");
return 2;
