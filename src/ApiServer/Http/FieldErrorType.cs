namespace Vmk.ApiServer.Http;

public enum FieldErrorType
{
    Invalid,
    Required,
    Forbidden,
    TooLong,
    NotSupported,
    Duplicate,
    TooMany,
}
