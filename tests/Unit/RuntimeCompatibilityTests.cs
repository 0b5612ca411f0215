using System.Text.Json;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// The compatibility gate extended to the engine's runtime (versions it recorded, its environment hash), and the resume
/// message that carries the canary to the engine.
/// </summary>
public sealed class RuntimeCompatibilityTests
{
    private static readonly EnvironmentIdentity Recorded = EnvironmentIdentity.Of(new Dictionary<string, string> { ["CUDA_VISIBLE_DEVICES"] = "0", ["HOME"] = "/root" });

    [Fact]
    public void The_environment_identity_is_the_sha256_of_the_five_prefixes_in_ordinal_order_as_the_engine_computes_it()
    {
        var identity = EnvironmentIdentity.Of(new Dictionary<string, string> { ["VLLM_A"] = "1", ["CUDA_VISIBLE_DEVICES"] = "0", ["HOME"] = "/root", ["TRITON_X"] = "é" });

        Assert.Equal(new[] { "CUDA_VISIBLE_DEVICES", "TRITON_X", "VLLM_A" }, identity.Names);
        // engine_host/inventory.py environment_identity of the same variables (python3, hashlib).
        Assert.Equal("42dbbc241f8bc67f79cf328b1556cbfbaa696dfd297763174c6e0cd8f0e34ff8", identity.Sha256);
    }

    [Fact]
    public void Another_environment_is_an_issue_naming_both_sides_variables()
    {
        var now = EnvironmentIdentity.Of(new Dictionary<string, string> { ["CUDA_VISIBLE_DEVICES"] = "1", ["NCCL_DEBUG"] = "INFO" });

        var issue = Assert.Single(Check(Manifest(), new RuntimeFacts(now, null)));

        Assert.Equal("Environment", issue.Property);
        Assert.Contains("[CUDA_VISIBLE_DEVICES]", issue.Checkpoint);
        Assert.Contains("[CUDA_VISIBLE_DEVICES, NCCL_DEBUG]", issue.Host);
    }

    [Fact]
    public void Each_recorded_version_that_differs_or_is_missing_is_an_issue_and_unrecorded_packages_are_not()
    {
        var versions = new Dictionary<string, string> { ["python"] = "3.12.1", ["numpy"] = "1.24.2", ["vllm"] = "0.33.0" };

        var issues = Check(Manifest(), new RuntimeFacts(Recorded, versions));

        Assert.Equal(new[] { "Version python: checkpoint has '3.11.2', this host has '3.12.1'", "Version torch: checkpoint has '2.9.0', this host has 'none'" },
            issues.Select(i => i.ToString()));
    }

    [Fact]
    public void The_same_runtime_is_no_issue_and_a_manifest_without_one_is_not_compared()
    {
        var versions = new Dictionary<string, string> { ["python"] = "3.11.2", ["torch"] = "2.9.0" };

        Assert.Empty(Check(Manifest(), new RuntimeFacts(Recorded, versions)));
        var withoutRuntime = Manifest();
        withoutRuntime.Runtime = null;
        Assert.Empty(Check(withoutRuntime, new RuntimeFacts(EnvironmentIdentity.Of([]), new Dictionary<string, string>())));
    }

    [Fact]
    public async Task A_restore_refuses_another_environment_with_checkpoint_incompatible_and_force_restores_anyway()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, new SaveOptions(), CancellationToken.None)).Checkpoint;
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Runtime!.Environment = Recorded);
        world.Calls.Clear();

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions(), CancellationToken.None));

        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("Environment: checkpoint has", failure.Message);
        Assert.DoesNotContain("start-restore", world.Calls);
        var forced = await new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions { Force = true }, CancellationToken.None);
        Assert.NotNull(forced[0].Engine);
    }

    [Fact]
    public async Task A_restore_refuses_a_python_of_another_version()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, new SaveOptions(), CancellationToken.None)).Checkpoint;
        world.Host.Versions = new() { ["python"] = "3.13.0" };

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions(), CancellationToken.None));

        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("Version python: checkpoint has '3.11.2', this host has '3.13.0'", failure.Message);
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void The_resume_message_carries_the_expected_canary_or_says_to_skip_it(bool skip, bool withCanary)
    {
        var canary = new CheckpointCanary { Prompt = "The capital of France is", TokenIds = [65, 66], Logprobs = [-0.4518, -1.25] };

        using var message = JsonDocument.Parse(EngineResumer.ResumeMessage(40123, "key", new ResumeTerms(withCanary ? canary : null, skip)));

        var root = message.RootElement;
        Assert.Equal(40123, root.GetProperty("port").GetInt32());
        Assert.Equal(skip, root.TryGetProperty("skip_canary", out var skipped) && skipped.GetBoolean());
        Assert.Equal(withCanary && !skip, root.TryGetProperty("canary", out var sent));
        if (withCanary && !skip)
        {
            Assert.Equal("The capital of France is", sent.GetProperty("prompt").GetString());
            Assert.Equal(new[] { 65, 66 }, sent.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
            Assert.Equal(new[] { -0.4518, -1.25 }, sent.GetProperty("logprobs").EnumerateArray().Select(e => e.GetDouble()));
        }
    }

    [Fact]
    public void A_failed_resume_with_canary_mismatch_is_its_own_error_id()
    {
        var record = new EngineRecord { Id = "0123456789ab", Name = "e" };

        var failure = EngineResumer.ResumeFailure(record, new FailedInfo { Code = "canary_mismatch", Message = "token ids differ: expected [1, 2], got [1, 3]" }, "tail");

        Assert.Equal(ErrorIds.CanaryMismatch, failure.ErrorId);
        Assert.Contains("expected [1, 2], got [1, 3]", failure.Message);
        Assert.Equal(ErrorIds.ResumeFailed, EngineResumer.ResumeFailure(record, new FailedInfo { Code = "resume_failed", Message = "x" }, "tail").ErrorId);
    }

    private static IReadOnlyList<CompatibilityIssue> Check(CheckpointManifest manifest, RuntimeFacts runtime) =>
        Compatibility.Check(manifest, manifest.Host, null, runtime);

    private static CheckpointManifest Manifest() => new()
    {
        Host = new HostFacts { Architecture = "X64", Kernel = "6.18.0", CpuModel = "cpu", CriuVersion = "4.2.1" },
        Runtime = new EngineRuntime { Versions = new() { ["python"] = "3.11.2", ["torch"] = "2.9.0" }, Environment = Recorded },
    };
}
