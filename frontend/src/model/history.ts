/** An undo stack of commands: each knows how to apply and revert itself. */

export interface Command<T> {
  apply(target: T): void;
  revert(target: T): void;
}

export const DEFAULT_HISTORY_DEPTH = 200;

export class History<T> {
  private done: Command<T>[] = [];
  private undone: Command<T>[] = [];

  constructor(private readonly depth = DEFAULT_HISTORY_DEPTH) {}

  /** Record a command that has already been applied. */
  push(command: Command<T>): void {
    this.done.push(command);
    if (this.done.length > this.depth) this.done.splice(0, this.done.length - this.depth);
    this.undone.length = 0;
  }

  undo(target: T): boolean {
    const command = this.done.pop();
    if (!command) return false;
    command.revert(target);
    this.undone.push(command);
    return true;
  }

  redo(target: T): boolean {
    const command = this.undone.pop();
    if (!command) return false;
    command.apply(target);
    this.done.push(command);
    return true;
  }

  get canUndo(): boolean {
    return this.done.length > 0;
  }

  get canRedo(): boolean {
    return this.undone.length > 0;
  }

  get size(): number {
    return this.done.length;
  }

  clear(): void {
    this.done.length = 0;
    this.undone.length = 0;
  }
}
