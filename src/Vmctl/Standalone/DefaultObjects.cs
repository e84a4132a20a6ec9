using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer;
using Vmk.ApiServer.Api;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// What a standalone machine needs before a VirtualMachine can run: the file-backed Datastore "local" (in the
/// datastore directory every daemon is allowed to open) and the PortGroup "vm-network" - the same objects as
/// examples/, so `kubectl apply -f examples/` afterwards changes nothing. Created only when absent: a user's
/// edits to them survive a restart.
/// </summary>
internal static class DefaultObjects
{
    public const string DatastoreName = "local";
    public const string PortGroupName = "vm-network";

    public static void Ensure(ApiServerHost api, string datastoreDirectory, ILogger logger)
    {
        CreateIfAbsent(api, "datastores", DatastoreName, new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "Datastore",
            ["metadata"] = new JsonObject { ["name"] = DatastoreName },
            ["spec"] = new JsonObject
            {
                ["device"] = new JsonObject { ["path"] = Path.Combine(datastoreDirectory, DatastoreName + ".vmfs"), ["type"] = "file", ["size"] = "8Gi" },
                ["format"] = new JsonObject { ["blockSize"] = "1Mi", ["autoFormat"] = true },
            },
        }, logger);
        CreateIfAbsent(api, "portgroups", PortGroupName, new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "PortGroup",
            ["metadata"] = new JsonObject { ["name"] = PortGroupName },
            ["spec"] = new JsonObject
            {
                ["vlanId"] = 0,
                ["uplink"] = new JsonObject { ["type"] = "vxlan", ["vni"] = 100 },
                ["security"] = new JsonObject { ["promiscuous"] = false, ["macChanges"] = false, ["forgedTransmits"] = false },
                ["ipam"] = new JsonObject
                {
                    ["type"] = "DHCP",
                    ["subnet"] = "10.250.0.0/24",
                    ["gateway"] = "10.250.0.1",
                    ["rangeStart"] = "10.250.0.100",
                    ["rangeEnd"] = "10.250.0.200",
                },
            },
        }, logger);
    }

    private static void CreateIfAbsent(ApiServerHost api, string plural, string name, JsonObject body, ILogger logger)
    {
        var def = api.Registry.Find("vmkernel.io", "v1alpha1", plural)
            ?? throw new StandaloneException($"The API server has no vmkernel.io/v1alpha1 {plural}: are the CRDs (--crds) complete?");
        if (api.Store.Get(def.StorageResource, "", name) is not null)
        {
            return;
        }
        // As `kubectl apply` would have left it: a later `kubectl apply -f examples/` then patches it cleanly.
        body["metadata"]!["annotations"] = new JsonObject
        {
            ["kubectl.kubernetes.io/last-applied-configuration"] = body.ToJsonString() + "\n",
        };
        try
        {
            api.Service.Create(def, null, body, WriteOptions.Default);
            logger.LogInformation("Created the default {Kind} {Name}", body["kind"]!.GetValue<string>(), name);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The CRD schema may have moved on from these defaults: say so, the user can apply examples/ instead.
            logger.LogWarning("Could not create the default {Kind} {Name}: {Error}; apply examples/ instead", body["kind"]!.GetValue<string>(), name, e.Message);
        }
    }
}
