using Vmk.ApiServer.Selectors;

namespace Vmk.ApiServer.Api;

public sealed record ListOptions(LabelSelector? Labels, FieldSelector? Fields, int Limit, string? Continue);
