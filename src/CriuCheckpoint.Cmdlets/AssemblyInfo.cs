using System.Runtime.Versioning;

// CRIU, PID namespaces and the NVIDIA checkpoint API exist on Linux only.
[assembly: SupportedOSPlatform("linux")]
