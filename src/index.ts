/// <reference types="@webgpu/types" preserve="true" />
// hybridps's public API: what `import ... from 'hybridps'` gives. The roles (scheduler, parameter
// server, client), the GPU worker step and the model runner with its model-as-data types, the
// GPU runtime underneath, ring allreduce and checkpoints. Everything else under src/ is internal
// and may move. (The reference line above gives users the WebGPU types our declarations use.)

// Roles and their client.
export { Scheduler, type SchedulerOptions } from './scheduler/scheduler.ts';
export { PsServer, type PsServerOptions } from './server/ps-server.ts';
export { PSClient, type PSClientOptions, type WireBytes } from './client/ps-client.ts';
export { ROW_FORMATS, type RowFormat } from './wire/row-format.ts';
export { generateSecret, loadSecret } from './transport/auth.ts';
export { loadTls, type TlsCredentials } from './transport/tls.ts';
export { registerOptimizer, optimizerNames, type UpdateFn, type OptimizerDef } from './server/optimizers.ts';

// The worker step, the model runner and models as data.
export {
  WorkerStep, psTableSpec, psTableSpecs, psDenseTableSpec,
  type WorkerBatch, type WorkerStepOptions, type WorkerStepResult, type StepPhases, type DenseMode, type DenseHook,
} from './worker/worker-step.ts';
export { DenseAllreduce, type DenseAllreduceOptions } from './worker/dense-allreduce.ts';
export { ModelRunner, type StepInputs, type StepResult, type StepTimings, type RunnerStepOptions, type DenseOptimizer } from './model/model-runner.ts';
export {
  validateSpec, denseSizes, denseLength,
  type ModelSpec, type TableDecl, type DenseParamDecl, type DenseInit, type BufferDecl, type KernelCall, type InputDecl,
  type Expr, type Initializer, type ConsistencyName, type OptimizerName,
} from './model/model-spec.ts';
export { dlrmSpec, DLRM_PRESETS, REPO_SHADERS, type DlrmConfig, type DlrmOptions } from './model/dlrm.ts';
export {
  defineModel, categoricalColumn,
  type ModelModule, type ModelConfig, type RecordBatch, type ModelBatch, type ModelSpecOptions,
} from './model/model-module.ts';

// The GPU runtime.
export { acquireGpu, waitIdle, settleOrLost, type Gpu, type AcquireOptions } from './gpu/device.ts';
export { KernelRegistry, KernelCompileError, DEFAULT_SHADER_DIR } from './gpu/kernel-registry.ts';
export { Dispatcher, type BufferArg } from './gpu/dispatch.ts';

// Ring allreduce and checkpoints (also as the subpaths 'hybridps/allreduce' and 'hybridps/checkpoint').
export * from './allreduce/index.ts';
export * from './checkpoint/index.ts';
