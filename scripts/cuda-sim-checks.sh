#!/usr/bin/env bash
# The GPU tests on a machine with no GPU: the CUDA backend's Java, its launch configurations and the kernel sources
# themselves run against cudasim (tensor/src/test/cudasim), a CPU simulation of the CUDA driver API, NVRTC and cuBLAS
# that compiles each kernel source with g++ and runs every CUDA thread as a fiber — warp shuffles, mma.sync and
# ldmatrix with the PTX ISA's fragment layouts, device memory fenced by inaccessible pages, a deadlock or a fault
# reported with the kernel, block, thread and address. It finds wrong indexing, races on a barrier, out-of-bounds
# reads and writes and fragment-layout mistakes; it says nothing about speed, and agrees with a GPU to fp32 rounding
# (g++ does not fuse a*b+c where nvcc does), not bit for bit. scripts/gpu-check.sh on a real GPU is still the check.
#
#   scripts/cuda-sim-checks.sh                       the GPU tests of gpu-check.sh and the backend's own
#   scripts/cuda-sim-checks.sh -Dtest=SomeGpuTest     any surefire selection instead (tensor, model, train, serve, bench)
#   scripts/cuda-sim-checks.sh --installed ...       the modules are already installed (scripts/test.sh just did)
#
# Needs Linux, g++ (apt-get install g++) and JDK 25; about 6 minutes on 2 cores. Compiled kernels are cached in
# $NC4JSIM_CACHE (default /tmp/nc4jsim-$UID).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/jdk.sh
nanochat4j_find_jdk
command -v g++ > /dev/null || { echo "cuda-sim-checks: g++ not found (apt-get install g++)" >&2; exit 2; }

sim="$PWD/tensor/src/test/cudasim"
out="$PWD/tensor/target/cudasim"
mkdir -p "$out"
g++ -std=c++17 -O2 -fPIC -shared -Wall -Wno-unused-function -DCUDASIM_INCLUDE="\"$sim\"" -o "$out/libcudasim.so.tmp" "$sim/cudasim.cpp" -ldl
mv "$out/libcudasim.so.tmp" "$out/libcudasim.so"
for n in libcuda.so.1 libnvrtc.so.13 libcublas.so.13; do ln -sf libcudasim.so "$out/$n"; done
props="-Dnanochat4j.cuda.driver=$out/libcuda.so.1 -Dnanochat4j.cuda.nvrtc=$out/libnvrtc.so.13 -Dnanochat4j.cuda.cublas=$out/libcublas.so.13"
# the simulator's "PTX" is C++ for this version of it: never mixed with a real GPU's cache, nor with an older simulator's
props="$props -Dnanochat4j.cuda.cache=$out/ptx-$(cat "$sim"/cudasim* | sha1sum | cut -c1-12)"

installed=0
if [ "${1:-}" = --installed ]; then
  installed=1
  shift
fi
selection=("$@")
if [ ${#selection[@]} -eq 0 ]; then
  # gpu-check.sh's conformance and train-extras stages, and the backend's own GPU tests (NvrtcCompileTest and
  # KernelCompileTest check real NVRTC's PTX and nvcc's cubins: cuda-host-checks.sh runs them)
  tests="CudaSimulatorTest,CudaGraphTest,BackendConformanceTest,Bf16MatmulConformanceTest,CudaBackendTest,PyTorchFixturesConformanceTest,TensorCoreGemmTest"
  tests="$tests,DeterministicScatterTest,CudaOutOfMemoryTest,DeviceTensorTest,Bf16WeightCacheTest,UploadedIdsTest,KernelProfileTest"
  tests="$tests,GPTCudaTest,GpuTrainStepTest,GpuAdamWTest,DeviceMuonTest,OverlappedGradReduceTest,CudaDecodeHostWaitsTest,CudaTrainStepHostWaitsTest"
  tests="$tests,BaseTrainTest#resumingOnTheGpuIsExact+aProfiledStepThatFailsLeavesNoProfileOn,DataParallelTrainTest#twoGpuWorkersOnOneGpuEqualOneGpuProcess"
  tests="$tests,RlTest#aRunOnTheGpuMatchesTheCpuAndResumesThere"
  tests="$tests,RlTest#anUpdateOnTheGpuGivesTheCpusLossAndGradients"
  # and the GPU halves of the stages' and commands' tests (the stand-in runs them in the Maven suite)
  tests="$tests,SftTest,ChatPipelineTest,BaseEvalCommandTest,ChatCommandTest,ServeCommandTest,InferBenchTest,InferSweepTest,KernelsBenchTest"
  selection=("-Dtest=$tests")
fi
[ "$installed" -eq 1 ] || ./mvnw -B -ntp -q install -DskipTests
# only each module's default surefire execution: the extra ones repeat CPU tests at other vector widths
./mvnw -B -ntp -pl tensor,model,train,serve,bench test-compile surefire:test@default-test -Dsurefire.failIfNoSpecifiedTests=false \
  "${selection[@]}" "-Dtest.jvm.extra=$props"
