using System.Reflection;
using CriuCheckpoint.Core;
using NetArchTest.Rules;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// The layers of the module (docs/architecture.md, "Components and folders") as rules on the built assembly:
/// each layer names only the layers below it, PowerShell stays in the cmdlets, and the public surface outside the
/// cmdlets is the objects they write.
/// </summary>
public class ArchitectureTests
{
    private static readonly Assembly Module = typeof(ErrorIds).Assembly;

    private static readonly string[] Layers = { "Core", "Native", "Link", "Engine", "Gpu", "Checkpoint", "Commands" };

    /// <summary>What the cmdlets write to the pipeline, with the types those objects expose, and the errors.</summary>
    private static readonly string[] OutputTypes =
    {
        "CriuCheckpoint.Checkpoint.CheckpointManifest",
        "CriuCheckpoint.Checkpoint.CheckpointVerification",
        "CriuCheckpoint.Checkpoint.CompatibilityIssue",
        "CriuCheckpoint.Checkpoint.EngineCheckpoint",
        "CriuCheckpoint.Checkpoint.GpuManifest",
        "CriuCheckpoint.Checkpoint.HostFacts",
        "CriuCheckpoint.Checkpoint.ImageFile",
        "CriuCheckpoint.Checkpoint.MappedFile",
        "CriuCheckpoint.Checkpoint.SupportReport",
        "CriuCheckpoint.Core.BackgroundWork",
        "CriuCheckpoint.Core.CriuCheckpointException",
        "CriuCheckpoint.Core.ErrorIds",
        "CriuCheckpoint.Core.FailureKind",
        "CriuCheckpoint.Core.PhaseTimings",
        "CriuCheckpoint.Engine.CheckpointCanary",
        "CriuCheckpoint.Engine.EngineInfo",
        "CriuCheckpoint.Engine.EngineModel",
        "CriuCheckpoint.Engine.EngineRuntime",
        "CriuCheckpoint.Engine.EngineSpec",
        "CriuCheckpoint.Engine.EnvironmentIdentity",
        "CriuCheckpoint.Engine.RuntimeProcess",
        "CriuCheckpoint.Engine.EngineState",
        "CriuCheckpoint.Engine.GenerationChunk",
        "CriuCheckpoint.Engine.GenerationResult",
        "CriuCheckpoint.Engine.StartSource",
        "CriuCheckpoint.Gpu.CudaProcessState",
        "CriuCheckpoint.Gpu.GpuProcess",
        "CriuCheckpoint.Gpu.WeightHolder",
        "CriuCheckpoint.Gpu.WeightHolderState",
        "CriuCheckpoint.Link.LinkLatency",
        "CriuCheckpoint.Native.ProcessNode",
    };

    [Fact]
    public void EveryTypeBelongsToALayer()
    {
        var outside = Module.GetTypes()
            .Where(t => t.Namespace?.StartsWith("CriuCheckpoint", StringComparison.Ordinal) == true)
            .Where(t => !Layers.Any(layer => InLayer(t.Namespace!, layer)))
            .Select(t => t.FullName)
            .ToArray();

        Assert.Empty(outside);
    }

    [Fact]
    public void CoreDependsOnNoOtherLayer() => AssertNoDependency("Core", LayersBut("Core"));

    [Fact]
    public void NativeDependsOnCoreAlone() => AssertNoDependency("Native", LayersBut("Native", "Core"));

    [Fact]
    public void LinkDependsOnNeitherEngineNorGpuNorCheckpointNorCommands() =>
        AssertNoDependency("Link", "Engine", "Gpu", "Checkpoint", "Commands");

    [Fact]
    public void OnlyCommandsDependOnCommands() =>
        AssertPasses(OutsideCommands().ShouldNot().HaveDependencyOn(Namespace("Commands")).GetResult());

    [Fact]
    public void OnlyCommandsReferencePowerShell() =>
        AssertPasses(OutsideCommands().ShouldNot().HaveDependencyOn("System.Management.Automation").GetResult());

    [Fact]
    public void OutsideCommandsOnlyOutputTypesArePublic()
    {
        var exposed = Module.GetExportedTypes()
            .Where(t => !InLayer(t.Namespace ?? string.Empty, "Commands"))
            .Select(t => t.FullName!)
            .Except(OutputTypes)
            .ToArray();

        Assert.Empty(exposed);
    }

    private static void AssertNoDependency(string layer, params string[] forbidden) =>
        AssertPasses(Types.InAssembly(Module)
            .That().ResideInNamespace(Namespace(layer))
            .ShouldNot().HaveDependencyOnAny(forbidden.Select(Namespace).ToArray())
            .GetResult());

    private static PredicateList OutsideCommands() =>
        Types.InAssembly(Module).That().DoNotResideInNamespace(Namespace("Commands"));

    private static void AssertPasses(TestResult result) =>
        Assert.True(result.IsSuccessful, "Breaks the rule: " + string.Join(", ", result.FailingTypeNames ?? Array.Empty<string>()));

    private static string[] LayersBut(params string[] allowed) => Layers.Except(allowed).ToArray();

    private static string Namespace(string layer) => $"CriuCheckpoint.{layer}";

    private static bool InLayer(string ns, string layer) =>
        ns == Namespace(layer) || ns.StartsWith(Namespace(layer) + ".", StringComparison.Ordinal);
}
