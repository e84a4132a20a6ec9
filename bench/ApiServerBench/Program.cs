using Vmk.ApiServerBench;

// apiserver-bench serve DIR durable|fast   -> runs the server (child process, measured for RSS)
// apiserver-bench run [objects] [writers]   -> drives both configurations and prints the figures
return args switch
{
    ["serve", var dir, var mode] => await ServerProcess.RunAsync(dir, mode == "durable"),
    ["run", ..] => await BenchDriver.RunAsync(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5000,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 4),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: apiserver-bench run [objects] [writers] | serve DIR durable|fast");
    return 2;
}
