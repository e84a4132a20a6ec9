namespace Vmk.Vmctl.Tests;

/// <summary>Tests that start QEMU never run alongside each other: TCG guests are CPU-bound.</summary>
[CollectionDefinition("qemu", DisableParallelization = true)]
public sealed class QemuCollection;
