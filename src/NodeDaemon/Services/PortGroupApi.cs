using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// PortGroupService: the contract is fixed here; the network issue (7: standard vSwitch, port groups) fills in
/// the handlers. Until then they answer UNIMPLEMENTED and List answers that nothing is realized.
/// </summary>
public sealed class PortGroupApi : PortGroupService.PortGroupServiceBase
{
    public override Task<PortGroupStatus> Apply(PortGroupSpec request, ServerCallContext context) =>
        throw NotYet($"applying port group '{request.Name}'");

    public override Task<RemovePortGroupResponse> Remove(PortGroupRef request, ServerCallContext context) =>
        throw NotYet($"removing port group '{request.Name}'");

    public override Task<ListPortGroupsResponse> List(ListPortGroupsRequest request, ServerCallContext context) =>
        Task.FromResult(new ListPortGroupsResponse());

    private static RpcException NotYet(string what) => new(new Status(StatusCode.Unimplemented,
        $"{what}: port groups are not implemented in this vmkerneld yet (issue 7, the network I/O stack, adds them)"));
}
