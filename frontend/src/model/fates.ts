/**
 * What became of the proposals offered when the task was loaded, told to the server on every save
 * so that decided proposals are not offered again and review shows the submitted shapes only:
 * accepted as is, accepted and then changed (geometry, class or attributes), or dropped (deleted,
 * before or after accepting it). Proposals still pending are left out: nobody decided them yet.
 */
import type { ProposalDecision, ProposalFate } from "../types";
import { type AnnotationDocument, type Shape, signature } from "./document";

const key = (predictionId: number, index: number) => `${predictionId}:${index}`;

export function proposalDecisions(doc: AnnotationDocument): ProposalDecision[] {
  const decisions = new Map<string, ProposalDecision>();
  for (const decision of doc.priorDecisions) decisions.set(key(decision.prediction, decision.index), decision);
  const fromProposal = new Map<string, Shape>();
  for (const shape of doc.shapes) {
    if (shape.origin) fromProposal.set(key(shape.origin.predictionId, shape.origin.index), shape);
  }
  for (const { predictionId, index } of doc.offered) {
    const shape = fromProposal.get(key(predictionId, index));
    if (shape?.proposal) continue; // still waiting for a decision
    let fate: ProposalFate = "dropped";
    if (shape) fate = signature(shape) === shape.origin!.signature ? "accepted" : "changed";
    decisions.set(key(predictionId, index), { prediction: predictionId, index, fate });
  }
  return [...decisions.values()];
}
