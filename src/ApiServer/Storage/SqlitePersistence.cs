using Microsoft.Data.Sqlite;

namespace Vmk.ApiServer.Storage;

/// <summary>
/// Durable copy of every object and of the resourceVersion counter, in one SQLite file (k3s' choice of store).
/// Layout: <c>objects(resource, namespace, name, rv, data)</c> keyed by the first three, <c>meta(key, value)</c>
/// holding <c>rv</c>, the last resourceVersion handed out. Each commit is one transaction, written before the
/// client hears success. Written by one thread at a time (the store's flusher).
/// </summary>
public sealed class SqlitePersistence : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _delete;
    private readonly SqliteCommand _setRv;

    public SqlitePersistence(string path, bool fullSync)
    {
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _connection.Open();
        Exec("PRAGMA journal_mode=WAL;");
        Exec(fullSync ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
        Exec("""
            CREATE TABLE IF NOT EXISTS objects (
              resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
              rv INTEGER NOT NULL, data BLOB NOT NULL,
              PRIMARY KEY (resource, namespace, name));
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """);

        _upsert = _connection.CreateCommand();
        _upsert.CommandText = "INSERT INTO objects(resource, namespace, name, rv, data) VALUES ($r, $ns, $n, $rv, $d) " +
                              "ON CONFLICT(resource, namespace, name) DO UPDATE SET rv = excluded.rv, data = excluded.data;";
        _upsert.Parameters.Add("$r", SqliteType.Text);
        _upsert.Parameters.Add("$ns", SqliteType.Text);
        _upsert.Parameters.Add("$n", SqliteType.Text);
        _upsert.Parameters.Add("$rv", SqliteType.Integer);
        _upsert.Parameters.Add("$d", SqliteType.Blob);

        _delete = _connection.CreateCommand();
        _delete.CommandText = "DELETE FROM objects WHERE resource = $r AND namespace = $ns AND name = $n;";
        _delete.Parameters.Add("$r", SqliteType.Text);
        _delete.Parameters.Add("$ns", SqliteType.Text);
        _delete.Parameters.Add("$n", SqliteType.Text);

        _setRv = _connection.CreateCommand();
        _setRv.CommandText = "INSERT INTO meta(key, value) VALUES ('rv', $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value;";
        _setRv.Parameters.Add("$v", SqliteType.Integer);
    }

    public long LoadResourceVersion()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT COALESCE((SELECT value FROM meta WHERE key = 'rv'), 0), COALESCE((SELECT MAX(rv) FROM objects), 0);";
        using var reader = cmd.ExecuteReader();
        reader.Read();
        return Math.Max(reader.GetInt64(0), reader.GetInt64(1));
    }

    public IEnumerable<(string Resource, string Namespace, string Name, long Rv, byte[] Data)> LoadAll()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT resource, namespace, name, rv, data FROM objects ORDER BY resource, namespace, name;";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            yield return (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), (byte[])reader.GetValue(4));
        }
    }

    public void Upsert(string resource, string ns, string name, long rv, byte[] data)
    {
        using var tx = _connection.BeginTransaction();
        _upsert.Transaction = tx;
        _upsert.Parameters["$r"].Value = resource;
        _upsert.Parameters["$ns"].Value = ns;
        _upsert.Parameters["$n"].Value = name;
        _upsert.Parameters["$rv"].Value = rv;
        _upsert.Parameters["$d"].Value = data;
        _upsert.ExecuteNonQuery();
        SetRv(tx, rv);
        tx.Commit();
    }

    public void Delete(string resource, string ns, string name, long rv)
    {
        using var tx = _connection.BeginTransaction();
        _delete.Transaction = tx;
        _delete.Parameters["$r"].Value = resource;
        _delete.Parameters["$ns"].Value = ns;
        _delete.Parameters["$n"].Value = name;
        _delete.ExecuteNonQuery();
        SetRv(tx, rv);
        tx.Commit();
    }

    /// <summary>Writes a batch of changes in one transaction (one fsync in durable mode): group commit.</summary>
    internal void WriteBatch(IReadOnlyList<PendingWrite> batch)
    {
        using var tx = _connection.BeginTransaction();
        _upsert.Transaction = tx;
        _delete.Transaction = tx;
        foreach (var w in batch)
        {
            var cmd = w.Data is null ? _delete : _upsert;
            cmd.Parameters["$r"].Value = w.Resource;
            cmd.Parameters["$ns"].Value = w.Namespace;
            cmd.Parameters["$n"].Value = w.Name;
            if (w.Data is not null)
            {
                cmd.Parameters["$rv"].Value = w.ResourceVersion;
                cmd.Parameters["$d"].Value = w.Data;
            }
            cmd.ExecuteNonQuery();
        }
        SetRv(tx, batch[^1].ResourceVersion);
        tx.Commit();
    }

    private void SetRv(SqliteTransaction tx, long rv)
    {
        _setRv.Transaction = tx;
        _setRv.Parameters["$v"].Value = rv;
        _setRv.ExecuteNonQuery();
    }

    private void Exec(string sql)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public void Dispose()
    {
        _upsert.Dispose();
        _delete.Dispose();
        _setRv.Dispose();
        _connection.Dispose();
    }
}
