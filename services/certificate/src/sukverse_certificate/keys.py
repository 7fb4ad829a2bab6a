"""Typed application keys of the certificate service."""

from __future__ import annotations

from aiohttp import web

from sukverse_certificate.service import CertificateService

CERTIFICATES = web.AppKey[CertificateService]("certificates")
