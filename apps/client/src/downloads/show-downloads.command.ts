import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { OUTPUT, OutputPort } from '../output/output.port';
import { completeFigures, DownloadManager, runningFigures } from './download.manager';

@Injectable()
export class ShowDownloadsCommand implements LocalCommand {
  readonly name = 'show_downloads';
  readonly args = [];
  readonly summary = "list this session's downloads: [D] running, [P] paused, [C] complete, [F] failed";

  constructor(
    private readonly downloads: DownloadManager,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  run(): Promise<void> {
    const entries = this.downloads.downloads;
    if (entries.length === 0) this.out.line('no downloads yet');
    for (const entry of entries) {
      const { groupId, job, resume } = entry;
      const p = job.progress;
      const head = `[${groupId}] ${p.fileName}`;
      if (this.downloads.isPaused(entry)) {
        this.out.line(
          `[P] ${head} ${p.percent.toFixed(1)}% paused; resume_download ${groupId} ${p.fileName} continues it`,
        );
      } else if (p.state === 'complete') this.out.line(`[C] ${head} -> ${p.destPath}: ${completeFigures(p)}`);
      else if (p.state === 'failed') this.out.line(`[F] ${head} (${p.reason ?? 'failed'})`);
      else if (resume?.isChecking) {
        this.out.line(
          `[D] ${head} checking ${resume.checkedCount} of ${resume.listedCount} chunks in ${resume.partPath}`,
        );
      } else {
        const phase = p.verifying ? ', verifying' : p.waiting ? `, ${p.waiting}` : '';
        const resumed = p.resumedChunks ? ` (resumed ${p.resumedChunks} of ${p.chunkCount} chunks)` : '';
        // `over TLS`: its connection is encrypted, the seeder's certificate the one its tracker lists
        const sources = p.seeders
          .filter((s) => s.chunks > 0)
          .map((s) => `${s.userId} ${s.chunks}${s.tls ? ' over TLS' : ''}`);
        const from = sources.length > 0 ? `; from ${sources.join(', ')}` : '';
        this.out.line(`[D] ${head} ${runningFigures(p)}${phase}${resumed}${from}`);
      }
    }
    return Promise.resolve();
  }
}
