"""Routes of the certificate service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import web

from sukverse_certificate.badges import STATUS_LIST_TTL
from sukverse_certificate.keys import CERTIFICATES
from sukverse_certificate.schemas import (
    CertificateOut,
    CertificatesQuery,
    CertificateSummary,
    RevokeIn,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    TemplatesQuery,
    VerificationOut,
)
from sukverse_common.api import JSON, Page, Routes, link, path_uuid, principal
from sukverse_common.errors import NotFound

routes = Routes("certificate")

# Open Badges 3.0 §5.2: a VC-JWT web resource is the Compact JWS as text/plain.
COMPACT_JWS = "text/plain"


@routes.post(
    "/templates",
    body=TemplateIn,
    response=TemplateOut,
    status=201,
    permission="certificate:write",
    errors=(403, 409, 503),
)
async def create_template(request: web.Request, body: TemplateIn) -> TemplateOut:
    """Define a workshop's certificate (its instructors, admins); issues at once to everyone
    who already meets it.

    A workshop that does not exist is a 422 naming `workshop_id` (503 when the workshop
    service cannot say). A second template for the workshop is a 409, and so is a second
    one with the caller's `external_id` (naming the field); `GET /templates?external_id=`
    finds the first."""
    return await request.app[CERTIFICATES].create_template(
        principal(request), body, authorization=request.headers["Authorization"]
    )


@routes.get(
    "/templates", query=TemplatesQuery, response=Page[TemplateOut], permission="certificate:write"
)
async def list_templates(request: web.Request, query: TemplatesQuery) -> Page[TemplateOut]:
    """Templates of the workshops the caller teaches (all, for admins). `external_id` keeps
    the one the caller created with it."""
    items, cursor = await request.app[CERTIFICATES].templates(
        principal(request),
        workshop_id=query.workshop_id,
        external_id=query.external_id,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[TemplateOut](items=items, next_cursor=cursor)


@routes.get("/templates/{id}", response=TemplateOut, permission="certificate:write", errors=(404,))
async def get_template(request: web.Request) -> TemplateOut:
    """A template of a workshop the caller teaches (any, for admins)."""
    return await request.app[CERTIFICATES].template(principal(request), path_uuid(request))


@routes.patch(
    "/templates/{id}",
    body=TemplatePatch,
    response=TemplateOut,
    permission="certificate:write",
    errors=(404,),
)
async def update_template(request: web.Request, body: TemplatePatch) -> TemplateOut:
    """Change a template; certificates already issued stay as they are, and everyone who
    now meets it gets one."""
    return await request.app[CERTIFICATES].update_template(
        principal(request), path_uuid(request), body
    )


@routes.get(
    "/certificates",
    query=CertificatesQuery,
    response=Page[CertificateSummary],
    permission="certificate:read",
    links={
        name: link(operation, id="$response.body#/items/0/id")
        for name, operation in (
            ("GetCertificate", "get_certificate"),
            ("GetCertificatePdf", "certificate_pdf"),
            ("GetCredential", "certificate_credential"),
            ("RevokeCertificate", "revoke_certificate"),
        )
    },
)
async def list_certificates(
    request: web.Request, query: CertificatesQuery
) -> Page[CertificateSummary]:
    """Certificates: one's own, those of the workshops one teaches, all for admins."""
    items, cursor = await request.app[CERTIFICATES].certificates(
        principal(request),
        user_id=query.user_id,
        workshop_id=query.workshop_id,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[CertificateSummary](items=items, next_cursor=cursor)


@routes.get("/certificates/{id}.pdf", permission="certificate:read", errors=(404,))
async def certificate_pdf(request: web.Request) -> web.Response:
    """The certificate as a PDF with a QR code to its verification page."""
    body = await request.app[CERTIFICATES].pdf(principal(request), path_uuid(request))
    return web.Response(body=body, content_type="application/pdf")


@routes.get(
    "/certificates/{id}", response=CertificateOut, permission="certificate:read", errors=(404,)
)
async def get_certificate(request: web.Request) -> CertificateOut:
    """A certificate with its text filled in."""
    return await request.app[CERTIFICATES].certificate(principal(request), path_uuid(request))


@routes.get("/certificates/{id}/credential", permission="certificate:read", errors=(404, 410))
async def certificate_credential(request: web.Request) -> web.Response:
    """The certificate as an Open Badges 3.0 OpenBadgeCredential signed as a VC-JWT (RS256,
    its `kid` in /.well-known/jwks.json); 410 once revoked."""
    token = await request.app[CERTIFICATES].credential(principal(request), path_uuid(request))
    return web.Response(text=token, content_type=COMPACT_JWS)


@routes.post(
    "/certificates/{id}/revoke",
    body=RevokeIn,
    response=CertificateOut,
    permission="certificate:write",
    errors=(403, 404),
)
async def revoke_certificate(request: web.Request, body: RevokeIn) -> CertificateOut:
    """Revoke a certificate with a reason (admins); a second revoke changes nothing."""
    return await request.app[CERTIFICATES].revoke(
        principal(request), path_uuid(request), body.reason
    )


@routes.get("/verify/{code}", response=VerificationOut, public=True)
async def verify(request: web.Request) -> VerificationOut:
    """Public: whether a verification code names a valid or revoked certificate, with the
    holder's name, the workshop and the date, and nothing else."""
    return await request.app[CERTIFICATES].verify(request.match_info["code"])


@routes.get("/status-lists/{number}", public=True, errors=(404,))
async def status_list(request: web.Request) -> web.Response:
    """Public: a revocation status list as a signed W3C BitstringStatusListCredential
    (VC-JWT), the `statusListCredential` of the credentials whose bits it holds; cacheable
    for its `ttl`."""
    number = request.match_info["number"]
    if not number.isascii() or not number.isdigit() or len(number) > 9:
        raise NotFound("no such status list")
    token = await request.app[CERTIFICATES].status_list(int(number))
    max_age = int(STATUS_LIST_TTL.total_seconds())
    return web.Response(
        text=token,
        content_type=COMPACT_JWS,
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


@routes.get("/.well-known/jwks.json", public=True)
async def jwks(request: web.Request) -> web.Response:
    """Public: the keys that sign this service's credentials."""
    return web.json_response(request.app[CERTIFICATES].jwks(), content_type=JSON)


@routes.get("/keys/{kid}", public=True, errors=(404,))
async def public_key(request: web.Request) -> web.Response:
    """Public: one signing key as a JWK; a credential's `kid` is this URL."""
    key = request.app[CERTIFICATES].public_key(request.match_info["kid"])
    return web.json_response(key, content_type=JSON)


@routes.get("/issuer", public=True)
async def issuer(request: web.Request) -> web.Response:
    """Public: the Open Badges issuer profile of this service."""
    return web.json_response(request.app[CERTIFICATES].issuer_profile(), content_type=JSON)
