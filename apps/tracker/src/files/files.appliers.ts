import { fileNameProblem, hexListToDigests, OpKind } from '@app/protocol';
import { groupFootprint } from '../groups/groups.appliers';
import { SyncService } from '../sync/sync.service';
import { FileStore } from './file.store';

/** The part of a path after its last '/'. */
export const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** What the file appliers ask of the files service. */
export interface FileApplierHooks {
  isMember(userId: string, groupId: string): boolean;
  /** Deletes the file when nobody seeds it any more, with the soft state about it; true when it went. */
  deleteIfUnseeded(groupId: string, fileName: string): boolean;
}

/**
 * The files module's changes, applied on every tracker in the same order: files and who seeds them.
 * A file lives in its group: membership and the group's files are the group's keys (groupFootprint).
 * A change that no longer fits does nothing.
 */
export function registerFileAppliers(sync: SyncService, files: FileStore, hooks: FileApplierHooks): void {
  sync.register(
    OpKind.UploadFile,
    ({ actor, time, groupId, filePath, fileSize, fileHash, chunkHashList }) => {
      if (!hooks.isMember(actor, groupId)) return;
      const fileName = baseName(filePath);
      if (fileNameProblem(fileName)) return; // a name no tracker accepts today is not created from an old op either
      const existing = files.getFile(groupId, fileName);
      if (existing && (existing.fileHash !== fileHash || existing.fileSize !== fileSize)) return;
      if (!existing) {
        const chunkHashes = hexListToDigests(chunkHashList);
        if (!chunkHashes) return; // the codec let only hex SHA-1 lists through: not reached
        files.addFile({ groupId, fileName, fileSize, fileHash, chunkHashes, uploader: actor, createdAt: time });
      }
      files.putSeeder({ groupId, fileName, userId: actor, filePath });
    },
    groupFootprint,
  );
  sync.register(
    OpKind.NewSeeder,
    ({ actor, groupId, fileName, filePath }) => {
      if (!hooks.isMember(actor, groupId)) return;
      files.putSeeder({ groupId, fileName, userId: actor, filePath });
    },
    groupFootprint,
  );
  sync.register(
    OpKind.StopShare,
    ({ actor, groupId, fileName }) => {
      if (files.removeSeeder(groupId, fileName, actor)) hooks.deleteIfUnseeded(groupId, fileName);
    },
    groupFootprint,
  );
}
