namespace Vmk.E2E.Tests;

public sealed class TwoHostStandalone() : StandaloneFixture(2);
