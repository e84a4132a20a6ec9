using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// MigrationService: the shape of DESIGN.md section 4 (prepare-incoming, migrate-out, finish, cancel); the live
/// migration issue (9) fills in the handlers. Until then every call answers UNIMPLEMENTED.
/// </summary>
public sealed class MigrationApi : MigrationService.MigrationServiceBase
{
    public override Task<PrepareIncomingResponse> PrepareIncoming(PrepareIncomingRequest request, ServerCallContext context) =>
        throw NotYet("PrepareIncoming");

    public override Task MigrateOut(MigrateOutRequest request, IServerStreamWriter<MigrationProgress> responseStream, ServerCallContext context) =>
        throw NotYet("MigrateOut");

    public override Task<Vm> FinishIncoming(FinishIncomingRequest request, ServerCallContext context) =>
        throw NotYet("FinishIncoming");

    public override Task<CancelMigrationResponse> Cancel(CancelMigrationRequest request, ServerCallContext context) =>
        throw NotYet("Cancel");

    private static RpcException NotYet(string call) => new(new Status(StatusCode.Unimplemented,
        $"{call}: live migration is not implemented in this vmkerneld yet (issue 9, vMotion with VMFS lock handover, adds it)"));
}
