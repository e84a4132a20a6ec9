namespace Vmk.ApiServer.Api;

/// <summary>What to do with fields a schema does not declare (query parameter <c>fieldValidation</c>).</summary>
public enum FieldValidation
{
    Ignore,
    Warn,
    Strict,
}
