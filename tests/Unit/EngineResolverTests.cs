using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Commands;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>How -Engine and -Id arguments name engines of a registry, and how -Path names checkpoints.</summary>
public sealed class EngineResolverTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("resolver-").FullName;
    private readonly EngineRegistry registry;
    private readonly EngineResolver resolver;

    public EngineResolverTests()
    {
        registry = new EngineRegistry(root);
        resolver = new EngineResolver(registry);
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void ANamePatternNamesEveryEngineWhoseNameMatchesOldestFirst()
    {
        var first = registry.Create(new EngineSpec(), "bench-1", StartSource.Cold);
        var second = registry.Create(new EngineSpec(), "bench-2", StartSource.Cold);
        registry.Create(new EngineSpec(), "demo", StartSource.Cold);

        var found = resolver.Resolve(new EngineIdentity("BENCH-*"), EngineKey.NameOrId);

        Assert.Equal(new[] { first.Id, second.Id }, found.Select(e => e.Id));
    }

    [Fact]
    public void AnExactIdNamesItsEngineWhereNamesAreExpected()
    {
        var engine = registry.Create(new EngineSpec(), "demo", StartSource.Cold);

        Assert.Equal("demo", Assert.Single(resolver.Resolve(new EngineIdentity(engine.Id), EngineKey.NameOrId)).Name);
    }

    [Fact]
    public void AnIdPatternMatchesIdsAndNeverNames()
    {
        var engine = registry.Create(new EngineSpec(), "named", StartSource.Cold);
        registry.Create(new EngineSpec(), engine.Id[..6] + "-lookalike", StartSource.Cold);

        var found = resolver.Resolve(new EngineIdentity(engine.Id[..6] + "*"), EngineKey.Id);

        Assert.Equal(engine.Id, Assert.Single(found).Id);
    }

    [Fact]
    public void ANamePatternNeverMatchesIds()
    {
        var engine = registry.Create(new EngineSpec(), "named", StartSource.Cold);

        Assert.Empty(resolver.Resolve(new EngineIdentity(engine.Id[..4] + "*"), EngineKey.NameOrId));
    }

    [Theory]
    [InlineData("missing", false)]
    [InlineData("0123456789ab", true)]
    public void ATextWithoutWildcardsThatNamesNoEngineIsEngineNotFound(string text, bool byId)
    {
        var key = byId ? EngineKey.Id : EngineKey.NameOrId;
        registry.Create(new EngineSpec(), "present", StartSource.Cold);

        var failure = Assert.Throws<CriuCheckpointException>(() => resolver.Resolve(new EngineIdentity(text), key));

        Assert.Equal(ErrorIds.EngineNotFound, failure.ErrorId);
        Assert.Equal(FailureKind.ObjectNotFound, failure.Kind);
        Assert.Equal(text, failure.Target);
    }

    [Theory]
    [InlineData("missing*", false)]
    [InlineData("ffffff?", true)]
    public void APatternThatMatchesNothingNamesNothingWithoutError(string text, bool byId)
    {
        registry.Create(new EngineSpec(), "present", StartSource.Cold);

        Assert.Empty(resolver.Resolve(new EngineIdentity(text), byId ? EngineKey.Id : EngineKey.NameOrId));
    }

    [Fact]
    public void AnEngineObjectStandsForItselfWithoutALookup()
    {
        var engine = new EngineInfo { Id = "0123456789ab", Name = "elsewhere" };

        Assert.Same(engine, Assert.Single(resolver.Resolve(new EngineIdentity(engine), EngineKey.Id)));
    }

    [Fact]
    public void ANameWithWildcardCharactersIsNamedExactlyWhenEscaped()
    {
        var exact = registry.Create(new EngineSpec(), "run[1]", StartSource.Cold);
        registry.Create(new EngineSpec(), "run1", StartSource.Cold);

        var found = resolver.Resolve(new EngineIdentity(NamePattern.EscapeText("run[1]")), EngineKey.NameOrId);

        Assert.Equal(exact.Id, Assert.Single(found).Id);
    }

    [Fact]
    public void OneEngineIsNeededWhereOneIsTakenAndSeveralAreAmbiguous()
    {
        registry.Create(new EngineSpec(), "bench-1", StartSource.Cold);
        registry.Create(new EngineSpec(), "bench-2", StartSource.Cold);

        var ambiguous = Assert.Throws<CriuCheckpointException>(() => resolver.ResolveOne(new EngineIdentity("bench-*"), EngineKey.NameOrId));
        var none = Assert.Throws<CriuCheckpointException>(() => resolver.ResolveOne(new EngineIdentity("other-*"), EngineKey.NameOrId));

        Assert.Equal(ErrorIds.EngineNameAmbiguous, ambiguous.ErrorId);
        Assert.Equal(ErrorIds.EngineNotFound, none.ErrorId);
        Assert.Equal("bench-1", resolver.ResolveOne(new EngineIdentity("bench-1"), EngineKey.NameOrId).Name);
    }

    [Theory]
    [InlineData("eng*", "engine-1", true)]
    [InlineData("eng?ne-1", "engine-1", true)]
    [InlineData("engine-[12]", "engine-2", true)]
    [InlineData("engine-[12]", "engine-3", false)]
    [InlineData("a.b", "axb", false)]
    [InlineData("a`*", "a*", true)]
    [InlineData("a`*", "ab", false)]
    [InlineData("a``b", "a`b", true)]
    [InlineData("run[1", "run[1", true)]
    [InlineData("run[a-c]", "run-b", false)]
    [InlineData("run[a-c]", "runB", true)]
    [InlineData("run[.^]", "run^", true)]
    [InlineData("run[.^]", "runx", false)]
    [InlineData("run[`]]", "run]", true)]
    public void NamePatternsFollowPowerShellWildcards(string pattern, string name, bool matches) =>
        Assert.Equal(matches, NamePattern.ToRegex(pattern).IsMatch(name));

    [Theory]
    [InlineData("plain", false)]
    [InlineData("a*", true)]
    [InlineData("a?", true)]
    [InlineData("a[bc]", true)]
    [InlineData("a`*", false)]
    [InlineData("a`[1`]", false)]
    [InlineData("a[1", false)]
    public void OnlyWildcardsThatAreNotEscapedMakeAPattern(string text, bool pattern) =>
        Assert.Equal(pattern, NamePattern.HasWildcards(text));

    [Theory]
    [InlineData("plain")]
    [InlineData("run[1]")]
    [InlineData("what?*")]
    [InlineData("back`tick")]
    [InlineData("open[")]
    public void AnEscapedTextMatchesItselfAlone(string text)
    {
        var escaped = NamePattern.EscapeText(text);

        Assert.False(NamePattern.HasWildcards(escaped));
        Assert.Matches(NamePattern.ToRegex(escaped), text);
    }

    [Fact]
    public void ACheckpointPathIsItselfAndAStorePathIsEveryPublishedCheckpointInIt()
    {
        var store = Path.Combine(root, "store");
        var published = new[] { "aaaa", "bbbb" }.Select(hash => Checkpoint(Path.Combine(store, hash))).ToArray();
        Directory.CreateDirectory(Path.Combine(store, "no-manifest"));
        Checkpoint(Path.Combine(store, ".staging-cccc"));

        Assert.Equal(published, CheckpointLocator.Directories(store));
        Assert.Equal(new[] { published[0] }, CheckpointLocator.Directories(published[0]));
        Assert.Empty(CheckpointLocator.Directories(Path.Combine(root, "nothing")));
    }

    private static string Checkpoint(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(CheckpointStore.ManifestPath(directory), "{}");
        return directory;
    }
}
