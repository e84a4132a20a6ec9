using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer.Api;
using Vmk.ApiServer.Gc;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Schema;
using Vmk.ApiServer.Security;
using Vmk.ApiServer.Storage;
using Vmk.ApiServer.Yaml;

namespace Vmk.ApiServer;

/// <summary>
/// One running API server: SQLite-backed store, resource registry (built-ins + CRDs), garbage collector and the
/// Kestrel HTTPS endpoint, with the kubeconfig written to the data directory. Dispose stops it cleanly.
/// </summary>
public sealed class ApiServerHost : IAsyncDisposable
{
    private static readonly string[] DefaultNamespaces = ["default", "kube-system", "kube-public", "kube-node-lease"];

    private readonly WebApplication _app;
    private readonly GarbageCollector _gc;
    private int _disposed;

    private ApiServerHost(WebApplication app, ObjectStore store, ObjectService service, ResourceRegistry registry, GarbageCollector gc,
        ServerCredentials credentials, string url, int port, string kubeconfigPath)
    {
        _app = app;
        Store = store;
        Service = service;
        Registry = registry;
        _gc = gc;
        Credentials = credentials;
        Url = url;
        Port = port;
        KubeconfigPath = kubeconfigPath;
    }

    public string Url { get; }

    public int Port { get; }

    public string KubeconfigPath { get; }

    public ServerCredentials Credentials { get; }

    public ObjectStore Store { get; }

    public ObjectService Service { get; }

    public ResourceRegistry Registry { get; }

    public GarbageCollector GarbageCollector => _gc;

    public static async Task<ApiServerHost> StartAsync(ApiServerOptions options, ILoggerFactory loggerFactory, CancellationToken ct = default)
    {
        var logger = loggerFactory.CreateLogger("Vmk.ApiServer");
        Directory.CreateDirectory(options.DataDirectory);
        if (options.AdditionalBindAddresses.Count > 0 && options.Port == 0)
        {
            throw new ArgumentException("Additional listen addresses need a fixed port: the port must be the same on every address.");
        }
        var credentials = ServerCredentials.LoadOrCreate(options.DataDirectory, options.AdditionalBindAddresses.Select(a => a.ToString()));
        var store = new ObjectStore(Path.Combine(options.DataDirectory, "state.db"), options.WatchLogCapacity, options.WatchQueueCapacity, options.DurableCommits);
        try
        {
            var registry = new ResourceRegistry();
            foreach (var def in BuiltinResources.All())
            {
                registry.AddBuiltin(def);
            }
            var service = new ObjectService(store, registry, logger);
            service.CrdChanged += (crd, deleted) => OnCrdChanged(registry, crd, deleted, logger);
            foreach (var crd in store.List("apiextensions.k8s.io/customresourcedefinitions", null).Items)
            {
                OnCrdChanged(registry, crd.Object, false, logger);
            }
            EnsureNamespaces(service, registry);
            if (options.CrdDirectory is not null)
            {
                InstallCrds(service, registry, options.CrdDirectory, logger);
            }
            var gc = new GarbageCollector(service, registry, loggerFactory.CreateLogger<GarbageCollector>());

            var watch = new WatchStreamer(service, options.BookmarkInterval, options.DefaultWatchTimeout);
            var handler = new ApiHandler(service, registry, watch, credentials.Token, logger);

            WebApplication app;
            try
            {
                app = BuildWebApplication(options, loggerFactory, credentials, handler);
                await app.StartAsync(ct);
            }
            catch
            {
                await gc.DisposeAsync();
                throw;
            }

            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var port = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
            var host = options.BindAddress.Equals(System.Net.IPAddress.Any) || options.BindAddress.Equals(System.Net.IPAddress.Loopback)
                ? "127.0.0.1"
                : options.BindAddress.ToString();
            var url = $"https://{host}:{port}";
            var kubeconfig = Path.Combine(options.DataDirectory, "kubeconfig");
            KubeconfigWriter.Write(kubeconfig, url, credentials.CaPem, credentials.Token);
            logger.LogInformation("API server listening on {Url}; {Objects} objects, resourceVersion {Rv}", url, store.Count, store.CurrentResourceVersion);
            return new ApiServerHost(app, store, service, registry, gc, credentials, url, port, kubeconfig);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private static WebApplication BuildWebApplication(ApiServerOptions options, ILoggerFactory loggerFactory, ServerCredentials credentials, ApiHandler handler)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = options.DataDirectory });
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddLogging();
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, EmbeddedHostLifetime>();
        builder.WebHost.UseKestrelCore().UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 4 * 1024 * 1024;
            k.Limits.MinResponseDataRate = null;
            k.Limits.Http2.MaxStreamsPerConnection = 1000;
            k.Listen(options.BindAddress, options.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(credentials.ServerCertificate);
            });
            foreach (var extra in options.AdditionalBindAddresses)
            {
                k.Listen(extra, options.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(credentials.ServerCertificate);
                });
            }
        });
        var app = builder.Build();
        app.Run(handler.HandleAsync);
        return app;
    }

    private static void OnCrdChanged(ResourceRegistry registry, JsonObject crd, bool deleted, ILogger logger)
    {
        var name = JsonKinds.GetString(crd["metadata"]?["name"]) ?? "";
        if (!deleted && crd["spec"]?.ToJsonString().Contains("\"x-kubernetes-validations\"", StringComparison.Ordinal) == true)
        {
            logger.LogWarning("CRD {Name} has x-kubernetes-validations (CEL) rules; this server does not evaluate them", name);
        }
        registry.SetCrd(name, deleted || CrdDefinitions.Validate(crd).Count > 0 ? [] : CrdDefinitions.ToDefinitions(crd));
    }

    private static void EnsureNamespaces(ObjectService service, ResourceRegistry registry)
    {
        var def = registry.Find("", "v1", "namespaces")!;
        foreach (var ns in DefaultNamespaces)
        {
            if (service.Store.Get("/namespaces", "", ns) is null)
            {
                service.Create(def, null, new JsonObject
                {
                    ["apiVersion"] = "v1",
                    ["kind"] = "Namespace",
                    ["metadata"] = new JsonObject { ["name"] = ns },
                }, WriteOptions.Default);
            }
        }
    }

    /// <summary>Creates or updates every CustomResourceDefinition found in <paramref name="directory"/>/*.yaml.</summary>
    public static void InstallCrds(ObjectService service, ResourceRegistry registry, string directory, ILogger logger)
    {
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"CRD directory {directory} does not exist; pass the project's crds/ directory");
        }
        var def = registry.Find("apiextensions.k8s.io", "v1", "customresourcedefinitions")!;
        foreach (var file in Directory.GetFiles(directory, "*.yaml").Order(StringComparer.Ordinal))
        {
            IReadOnlyList<JsonNode> docs;
            try
            {
                docs = YamlJson.ParseDocuments(File.ReadAllText(file));
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{file}: {e.Message}", e);
            }
            foreach (var doc in docs.OfType<JsonObject>())
            {
                if (JsonKinds.GetString(doc["kind"]) != "CustomResourceDefinition")
                {
                    continue;
                }
                var name = JsonKinds.GetString(doc["metadata"]?["name"]) ?? "";
                try
                {
                    var existing = service.Store.Get(def.StorageResource, "", name);
                    if (existing is null)
                    {
                        service.Create(def, null, doc, WriteOptions.Default);
                        logger.LogInformation("Installed CRD {Name} from {File}", name, file);
                    }
                    else
                    {
                        ((JsonObject)doc["metadata"]!)["resourceVersion"] = existing.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
                        service.Update(def, "", name, doc, false, WriteOptions.Default);
                    }
                }
                catch (ApiException e)
                {
                    throw new InvalidDataException($"{file}: CRD {name} rejected: {e.Message}", e);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        // Watches end first (their channels complete), so Kestrel's graceful stop does not wait on them.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        Store.CloseWatches();
        try
        {
            await _app.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }
        await _gc.DisposeAsync();
        await _app.DisposeAsync();
        Store.Dispose();
    }
}
