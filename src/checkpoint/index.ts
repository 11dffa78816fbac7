// Checkpoints: safetensors files (one per server shard) plus manifest.json. See docs/checkpoints.md.
export {
  writeSafetensors, readSafetensors, readSafetensorsHeader, dtypeSize, SafetensorsError, MAX_HEADER_BYTES,
  type Dtype, type Tensor, type TypedArray, type TensorInfo, type SafetensorsFile, type SafetensorsHeader,
} from './safetensors.ts';
export { writeFileAtomic, writeBytesAtomic, TEMP_FILE } from './atomic-file.ts';
export {
  saveTableStores, loadTableStores, loadCheckpointFiles, listShardFiles, shardFileName, tableTensors,
  SHARD_FORMAT, SHARD_VERSION,
  type ShardMeta, type SavedShard, type LoadedTable, type LoadedCheckpoint, type TableMeta, type ShardRows, type ShardTable,
} from './table-shards.ts';
export {
  writeManifest, readManifest, checkManifest, checkpointFiles, ManifestError,
  MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION,
  type CheckpointManifest, type ManifestInput, type ManifestFile, type ClusterShape,
} from './manifest.ts';
