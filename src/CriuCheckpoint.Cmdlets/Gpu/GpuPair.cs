using System.Globalization;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// A GPU a process was checkpointed on and the GPU to restore it onto, by UUID as NVML and nvidia-smi print it
/// (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx). The driver takes the same 16 bytes as a CUuuid.
/// </summary>
internal sealed record GpuPair(string OldUuid, string NewUuid)
{
    /// <summary>The 16 bytes of a GPU UUID; the GPU- prefix and the dashes are optional.</summary>
    public static byte[] UuidBytes(string uuid)
    {
        ArgumentNullException.ThrowIfNull(uuid);
        var hex = (uuid.StartsWith("GPU-", StringComparison.OrdinalIgnoreCase) ? uuid[4..] : uuid).Replace("-", string.Empty, StringComparison.Ordinal);
        if (hex.Length != 32 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new FormatException(string.Create(CultureInfo.InvariantCulture,
                $"'{uuid}' is not a GPU UUID: expected GPU- and 32 hexadecimal digits, as nvidia-smi -L prints them."));
        }

        return Convert.FromHexString(hex);
    }

    public override string ToString() => $"{OldUuid} -> {NewUuid}";
}
