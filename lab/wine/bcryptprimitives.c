/* Wine 8 (Debian 12) lacks bcryptprimitives.dll, whose ProcessPrng the Rust
 * standard library calls for random bytes since Rust 1.78. This stand-in,
 * for running lifebuoy.exe under wine in tests only, forwards to
 * RtlGenRandom (advapi32's SystemFunction036), which wine has. Never
 * shipped: Windows 10 and later have the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
