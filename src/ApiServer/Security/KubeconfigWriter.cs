using System.Text;

namespace Vmk.ApiServer.Security;

/// <summary>Writes the kubeconfig that points kubectl (and KubernetesClient) at this server.</summary>
public static class KubeconfigWriter
{
    public const string ContextName = "vmk-standalone";

    public static string Render(string serverUrl, string caPem, string token, string defaultNamespace = "default")
    {
        var ca = Convert.ToBase64String(Encoding.ASCII.GetBytes(caPem));
        return $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: {ContextName}
              cluster:
                server: {serverUrl}
                certificate-authority-data: {ca}
            users:
            - name: {ContextName}-admin
              user:
                token: {token}
            contexts:
            - name: {ContextName}
              context:
                cluster: {ContextName}
                user: {ContextName}-admin
                namespace: {defaultNamespace}
            current-context: {ContextName}

            """;
    }

    public static void Write(string path, string serverUrl, string caPem, string token)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, Render(serverUrl, caPem, token));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
