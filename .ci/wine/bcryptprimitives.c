/* A stand-in for Windows' bcryptprimitives.dll, for running the Windows test
 * binaries under Wine 8 (Debian 12), which lacks it: Rust's std (1.78 and later)
 * takes its random numbers from ProcessPrng there. This one answers from
 * RtlGenRandom (advapi32's SystemFunction036). Test use only; never shipped.
 * Built by .ci/wine/runner into the folder of the test binary. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
