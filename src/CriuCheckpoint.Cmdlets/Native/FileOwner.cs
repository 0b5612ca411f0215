using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>Who the module runs as.</summary>
internal static partial class FileOwner
{
    public static uint EffectiveUserId => GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
