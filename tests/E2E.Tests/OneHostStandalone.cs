namespace Vmk.E2E.Tests;

public sealed class OneHostStandalone() : StandaloneFixture(1);
