using System.CommandLine;
using Vmk.Vmctl.Commands;

var root = new RootCommand("vmctl: run and manage VMkernel virtual machines, datastores and disks");
root.Subcommands.Add(VmCommands.Create());
root.Subcommands.Add(DsCommands.Create());
root.Subcommands.Add(DiskCommands.Create());
root.Subcommands.Add(StandaloneCommand.Create());
root.Subcommands.Add(NetCommands.Create());
root.Subcommands.Add(MigrateCommands.Create());
return await root.Parse(args).InvokeAsync();
