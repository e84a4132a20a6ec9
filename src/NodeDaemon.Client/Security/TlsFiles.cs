using System.Security.Cryptography.X509Certificates;

namespace Vmk.NodeDaemon.Client.Security;

/// <summary>
/// The certificate files of the mutual TLS, named as the keys of a Kubernetes TLS Secret so that the Secret can be
/// mounted as a directory as is: <c>ca.crt</c> (the CA both sides trust), <c>tls.crt</c>/<c>tls.key</c> (this side's
/// certificate and key). Client sets generated for tests and tools add <c>client.crt</c>/<c>client.key</c>.
/// </summary>
public static class TlsFiles
{
    public const string CaCertificate = "ca.crt";
    public const string Certificate = "tls.crt";
    public const string Key = "tls.key";
    public const string ClientCertificate = "client.crt";
    public const string ClientKey = "client.key";

    /// <summary>Loads the CA and this side's certificate with its key from a directory; errors name the missing file.</summary>
    public static (X509Certificate2 Ca, X509Certificate2 Certificate) Load(string directory, string certificateFile = Certificate, string keyFile = Key)
    {
        var caPath = Require(directory, CaCertificate);
        var certPath = Require(directory, certificateFile);
        var keyPath = Require(directory, keyFile);
        var ca = X509CertificateLoader.LoadCertificateFromFile(caPath);
        var cert = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        return (ca, cert);
    }

    private static string Require(string directory, string file)
    {
        var path = Path.Combine(directory, file);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(
                $"TLS file '{path}' is missing: mount the daemon's TLS Secret there (keys ca.crt, tls.crt, tls.key) or generate a set with `vmkerneld certificates --out {directory}`", path);
        }
        return path;
    }
}
