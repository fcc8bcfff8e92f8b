/**
 * The requests made in one event-loop turn, run together: a caller asks for one item and gets
 * its answer, while the store makes one call per `perCall` items instead of one each. `run`
 * answers its requests in order; if it fails, each of them fails with its error.
 */
export class TurnBatch<Request, Answer> {
  #queued: { request: Request; resolve(answer: Answer): void; reject(err: unknown): void }[] = []

  constructor(
    private readonly run: (requests: Request[]) => Promise<Answer[]>,
    private readonly perCall: number,
  ) {}

  ask(request: Request): Promise<Answer> {
    return new Promise((resolve, reject) => {
      if (this.#queued.push({ request, resolve, reject }) === 1) setImmediate(() => this.#flush())
    })
  }

  #flush(): void {
    const queued = this.#queued
    this.#queued = []
    for (let i = 0; i < queued.length; i += this.perCall) {
      const chunk = queued.slice(i, i + this.perCall)
      this.run(chunk.map((q) => q.request)).then(
        (answers) => chunk.forEach((q, j) => q.resolve(answers[j]!)),
        (err: unknown) => chunk.forEach((q) => q.reject(err)),
      )
    }
  }
}
