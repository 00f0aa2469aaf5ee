// A choice's text as tokens arrive: detokenised as a stream (never half a UTF-8
// character), or, without a tokenizer, the ids space-separated (as `infer run` prints
// them). String stops: the text is searched after every token and cut before the
// first stop; while streaming, the last (longest stop - 1) characters are held back,
// since they may be the start of a stop string the next token completes.
import type { StreamDecoder, Tokenizer } from '../../runtime/tokenizer/index.ts';

export class TextOut {
  text = '';
  stopped = false;
  private emitted = 0;
  private count = 0;
  private readonly decoder: StreamDecoder | null;
  private readonly hold: number;

  constructor(tokenizer: Tokenizer | null, private readonly stops: readonly string[], { stripPrefixSpace = false } = {}) {
    // A completion continues its prompt: keep the first token's leading space (a chat reply drops it).
    this.decoder = tokenizer ? tokenizer.createStreamDecoder({ stripPrefixSpace }) : null;
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  get length(): number { return this.emitted; }

  /** Adds a token; returns the text that may be sent now. */
  push(id: number): string {
    const piece = this.decoder ? this.decoder.push(id) : `${this.count === 0 ? '' : ' '}${id}`;
    this.count++;
    return this.add(piece);
  }

  /** The rest: anything held back or buffered by the decoder. */
  flush(): string {
    if (!this.stopped && this.decoder) this.add(this.decoder.flush());
    const out = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return out;
  }

  private add(piece: string): string {
    if (this.stopped) return '';
    this.text += piece;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, Math.max(0, this.emitted - s.length));
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.stopped = true;
      return this.flush();
    }
    const upto = Math.max(this.emitted, this.text.length - this.hold);
    const out = this.text.slice(this.emitted, upto);
    this.emitted = upto;
    return out;
  }
}
