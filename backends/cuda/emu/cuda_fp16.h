// Stands in for CUDA's header when kernels are compiled for the CPU (cuda_emu.h defines __half).
