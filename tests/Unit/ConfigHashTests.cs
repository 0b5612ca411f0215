using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public class ConfigHashTests
{
    private static EngineSpec Spec(params (string Key, object? Value)[] args) => new()
    {
        Backend = "tiny",
        Model = "tiny-16m",
        Workers = 2,
        EngineArgs = args.ToDictionary(a => a.Key, a => a.Value),
    };

    [Fact]
    public void IsStableAndIndependentOfArgumentOrder()
    {
        var a = ConfigHash.Compute(Spec(("n_layers", 2), ("seed", 7)));
        var b = ConfigHash.Compute(Spec(("seed", 7), ("n_layers", 2)));

        Assert.Equal(a, b);
        Assert.Matches("^[0-9a-f]{16}$", a);
    }

    [Fact]
    public void NumbersHashTheSameWhateverTheirClrType()
    {
        Assert.Equal(ConfigHash.Compute(Spec(("n_layers", 2))), ConfigHash.Compute(Spec(("n_layers", 2L))));
        Assert.Equal(ConfigHash.Compute(Spec(("scale", 0.5))), ConfigHash.Compute(Spec(("scale", 0.5f))));
    }

    [Fact]
    public void ChangesWithEverythingThatShapesTheLoadedState()
    {
        var baseline = ConfigHash.Compute(Spec());
        var variants = new[]
        {
            Spec() with { Backend = "torch" },
            Spec() with { Model = "tiny-64m" },
            Spec() with { Workers = 1 },
            Spec() with { Device = "cpu" },
            Spec() with { Dtype = "float32" },
            Spec() with { MaxModelLen = 128 },
            Spec() with { GpuMemoryUtilization = 0.5 },
            Spec(("n_layers", 3)),
        };

        Assert.All(variants, v => Assert.NotEqual(baseline, ConfigHash.Compute(v)));
        Assert.Equal(variants.Length, variants.Select(ConfigHash.Compute).Distinct().Count());
    }

    [Fact]
    public void DoesNotDependOnThePythonThatRunsTheEngine()
    {
        Assert.Equal(ConfigHash.Compute(Spec() with { Python = "/usr/bin/python3" }), ConfigHash.Compute(Spec() with { Python = "python3.12" }));
    }

    [Fact]
    public void CanonicalJsonSortsNestedKeys()
    {
        var json = ConfigHash.CanonicalJson(new Dictionary<string, object?>
        {
            ["b"] = new Dictionary<string, object?> { ["z"] = 1, ["a"] = true },
            ["a"] = new object?[] { "x", 1.5, null },
        });

        Assert.Equal("{\"a\":[\"x\",1.5,null],\"b\":{\"a\":true,\"z\":1}}", json);
    }
}
