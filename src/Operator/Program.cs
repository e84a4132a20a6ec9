// vm-operator: the controller runtime and reconcilers arrive with the operator issue.
Console.Error.WriteLine("vm-operator: not yet implemented; use `vmctl vm run` for now.");
return 2;
