using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>kill(2) by PID: the module never signals processes by name.</summary>
internal static partial class Signals
{
    public const int SigKill = 9;
    public const int SigTerm = 15;

    /// <summary>Sends a signal; false when the process no longer exists.</summary>
    public static bool Send(int pid, int signal)
    {
        if (pid <= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "Refusing to signal PID 0, 1 or a process group.");
        }

        return Kill(pid, signal) == 0;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
