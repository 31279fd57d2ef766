"""The stewards' pages: the review queue, a pair side by side with its evidence, and the
same / different / withdraw and split decisions (``deploy.stewardship.review`` does the work).

The queue is read on the steward's own connection, so a steward sees only pairs whose two
records their clearance covers, and every person shown is in the read audit (paths
``review_pair`` and ``review_split``), as with ``tipsync review``. A decision is a
``StewardDecision`` event on the stewardship topic, written with the ``steward``
principal's client file, naming the steward's login: the resolver applies it and the person
pages follow once the sink has written the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from deploy.console.pipeline import Pipeline
from deploy.console.sessions import Session
from deploy.stewardship.review import find_pair, open_pairs, publish_decision, read_decisions
from deploy.stewardship.split import golden_sources
from schemas.stewardship import pair_id, steward_decision

KINDS = {"same": "MUST_LINK", "different": "CANNOT_LINK", "withdraw": "WITHDRAWN"}
# The fields shown side by side, in this order (the queue's own list).
SIDE_FIELDS = ("given_name", "middle_name", "family_name", "aliases", "date_of_birth",
               "dob_precision", "date_of_birth_text", "sex", "citizenship", "identifiers",
               "phones", "emails", "addresses", "agencies", "classification",
               "source_version", "deleted", "person_id")
MAX_REASON_CHARACTERS = 500


def shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(shown(item) for item in value)
    if isinstance(value, dict):
        return " ".join(str(item) for item in value.values() if item is not None)
    return str(value)


def side_by_side(pair: Any) -> list[tuple[str, str, str]]:
    """(field, left, right) for every field either side has."""
    left, right = pair.sides.get(pair.a_key) or {}, pair.sides.get(pair.b_key) or {}
    rows = [(name, shown(left.get(name)), shown(right.get(name))) for name in SIDE_FIELDS]
    return [row for row in rows if row[1] or row[2]]


def decision_reason(form: Any) -> str | None:
    reason = str(form.get("reason") or "").strip()
    return reason[:MAX_REASON_CHARACTERS] or None


def review_routes(pipeline: Pipeline) -> Callable[..., list[Route]]:
    def routes(render: Callable[..., Response], authenticated: Callable[..., Any],
               locked: Callable[..., Any]) -> list[Route]:
        from starlette.concurrency import run_in_threadpool

        def refuse(request: Request, session: Session) -> Response:
            return render(request, "refused.html", 403, session,
                          reason="Reviewing pairs is for stewards; ask your administrator"
                          " (tipsync analyst add --steward).")

        def stewards_only(page: Callable[..., Any]) -> Any:
            async def checked(request: Request, session: Session) -> Response:
                if not session.steward:
                    return refuse(request, session)
                response: Response = await page(request, session)
                return response
            return authenticated(checked)

        def decisions() -> dict[str, dict[str, Any]]:
            return read_decisions(pipeline.steward, pipeline.topics)

        async def sources_of(request: Request, session: Session) -> tuple[str, Any]:
            golden_id = str(request.path_params["golden_id"])
            found = await run_in_threadpool(
                locked, session, lambda: golden_sources(session.connection, golden_id))
            return golden_id, found

        async def queue(request: Request, session: Session) -> Response:
            known = await run_in_threadpool(decisions)
            pairs = await run_in_threadpool(
                locked, session, lambda: open_pairs(session.connection, known))
            return render(request, "review.html", session=session, pairs=pairs,
                          decided=request.query_params.get("decided"))

        async def pair(request: Request, session: Session) -> Response:
            known = await run_in_threadpool(decisions)
            wanted = request.path_params["pair_id"]
            found = await run_in_threadpool(
                locked, session, lambda: find_pair(session.connection, wanted, known))
            if found is None:
                return render(request, "missing.html", 404, session,
                              reason=f"No pair {wanted} among the pairs you may see.")
            return render(request, "pair.html", session=session, pair=found,
                          rows=side_by_side(found))

        async def decide(request: Request, session: Session) -> Response:
            form = await request.form()
            kind = KINDS.get(str(form.get("kind")))
            wanted = request.path_params["pair_id"]
            # The pair must be one this steward may see: looked up on their connection.
            found = await run_in_threadpool(
                locked, session, lambda: find_pair(session.connection, wanted, {}))
            if found is None or kind is None:
                return render(request, "missing.html", 404, session,
                              reason=f"No pair {wanted} you may decide, or no decision"
                              " chosen (same, different or withdraw).")
            decision = steward_decision(found.a_key, found.b_key, kind, session.analyst,
                                        decision_reason(form))
            await run_in_threadpool(publish_decision, pipeline.steward, pipeline.topics,
                                    decision)
            return RedirectResponse(f"/review?decided={pair_id(found.a_key, found.b_key)}",
                                    status_code=303)

        async def split_form(request: Request, session: Session) -> Response:
            _, found = await sources_of(request, session)
            return render(request, "split.html", session=session, found=found,
                          done=request.query_params.get("done"))

        async def split(request: Request, session: Session) -> Response:
            form = await request.form()
            record = str(form.get("record") or "")
            golden_id, found = await sources_of(request, session)
            keys = [source["key"] for source in found.sources]
            if record not in keys or len(keys) < 2:
                return render(request, "missing.html", 404, session,
                              reason=f"{record or 'No record'} is not one of the records of"
                              f" person {golden_id} you may see, so there is nothing to"
                              " split.")
            reason = decision_reason(form)
            for other in keys:
                if other != record:
                    await run_in_threadpool(
                        publish_decision, pipeline.steward, pipeline.topics,
                        steward_decision(record, other, "CANNOT_LINK", session.analyst, reason))
            return RedirectResponse(f"/person/{golden_id}/split?done={len(keys) - 1}",
                                    status_code=303)

        return [
            Route("/review", stewards_only(queue), methods=["GET"]),
            Route("/review/{pair_id}", stewards_only(pair), methods=["GET"]),
            Route("/review/{pair_id}/decide", stewards_only(decide), methods=["POST"]),
            Route("/person/{golden_id:uuid}/split", stewards_only(split_form), methods=["GET"]),
            Route("/person/{golden_id:uuid}/split", stewards_only(split), methods=["POST"]),
        ]
    return routes
