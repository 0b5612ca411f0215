using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Commands;

/// <summary>A cmdlet that acts on weight holders named by -Name or -Id (wildcards allowed), or piped in.</summary>
public abstract class WeightHoldersCmdlet : CriuCheckpointCmdlet
{
    private protected const string ByName = "Name";

    private protected WeightHolderRegistry Holders => WeightHolderRegistry.For(Registry);

    /// <summary>The holders whose names, or (in the Id set) ids, match the patterns; a pattern without wildcards that matches none is a WeightHolderNotFound error.</summary>
    private protected IEnumerable<WeightHolder> Matching(IReadOnlyList<string> patterns, bool byId)
    {
        var holders = Holders.List();
        var given = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pattern in patterns)
        {
            var regex = NamePattern.ToRegex(pattern);
            var matched = holders.Where(h => regex.IsMatch(byId ? h.Id : h.Name)).ToArray();
            if (matched.Length == 0 && !NamePattern.HasWildcards(pattern))
            {
                WriteFailure(new CriuCheckpointException(ErrorIds.WeightHolderNotFound, FailureKind.ObjectNotFound,
                    $"No weight holder with {(byId ? "id" : "name")} '{pattern}'. Get-WeightHolder lists them.", pattern));
            }

            foreach (var holder in matched.Where(h => given.Add(h.Id)))
            {
                yield return holder;
            }
        }
    }
}
