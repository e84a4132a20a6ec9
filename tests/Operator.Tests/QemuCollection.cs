namespace Vmk.Operator.Tests;

/// <summary>Tests that start QEMU run one at a time: the machine has 2 cores and TCG is CPU-hungry.</summary>
[CollectionDefinition("qemu", DisableParallelization = true)]
public sealed class QemuCollection;
