export { RingAllreduce, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, EXCHANGE_MAX_BYTES, HALVING_MIN_BYTES, type RingMember, type RingAllreduceOptions, type AllreduceStats } from './ring-allreduce.ts';
export { AllreduceError, AllreduceAbortedError, AllreduceTimeoutError, AllreduceProtocolError } from './errors.ts';
export { f16ErrorBound } from './f16-bound.ts';
export { allreduceBuffer, releaseAllreduceBuffer } from './simd-add.ts';
