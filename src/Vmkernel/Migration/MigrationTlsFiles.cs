namespace Vmk.Vmkernel.Migration;

/// <summary>
/// PEM files for the TLS of migration streams: one CA every host trusts, a server certificate (the target side;
/// its names must include the host's migration address, which the source checks) and a client certificate (the
/// source side, checked by the target). A daemon passes its own TLS material (ca.crt, tls.crt/key, client.crt/key).
/// </summary>
public sealed record MigrationTlsFiles(
    string CaCertificate,
    string ServerCertificate,
    string ServerKey,
    string ClientCertificate,
    string ClientKey);
