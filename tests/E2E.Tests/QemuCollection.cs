namespace Vmk.E2E.Tests;

/// <summary>Tests that boot guests never run in parallel with each other: TCG guests need the machine's cores.</summary>
[CollectionDefinition("qemu", DisableParallelization = true)]
public sealed class QemuCollection;
