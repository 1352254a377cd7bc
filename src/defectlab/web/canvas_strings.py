"""Every text the annotation canvas shows, translatable like the rest of the UI.

The canvas (frontend/, built into web/static/defectlab/canvas.js) has no English of its own: the
page passes these strings, translated for the request, in the workspace config under "strings".
Keys are the names the TypeScript uses; "{name}" placeholders are filled in by the canvas.
frontend/test/strings.test.ts fails when a key used in the canvas is missing here, or unused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

# Lazy: each value becomes text in the language active when it is read (str(value)).
CANVAS_STRINGS: dict[str, StrPromise] = {
    "tool.select": _("Select"),
    "tool.box": _("Box"),
    "tool.polygon": _("Polygon"),
    "tool.points": _("Points"),
    "toolbar.title": _("Toolbar"),
    "toolbar.tools": _("Drawing tools"),
    "toolbar.view": _("View"),
    "toolbar.edit": _("Edit"),
    "view.zoomIn": _("Zoom in"),
    "view.zoomOut": _("Zoom out"),
    "view.fit": _("Fit"),
    "view.rotate": _("Rotate"),
    "edit.undo": _("Undo"),
    "edit.redo": _("Redo"),
    "canvas.label": _("Image and shapes"),
    "image.loading": _("Loading image…"),
    "image.error": _("The image could not be loaded. Reload the page to try again."),
    "image.adjust": _("Image display"),
    "image.brightness": _("Brightness"),
    "image.contrast": _("Contrast"),
    "image.reset": _("Reset"),
    "action.save": _("Save"),
    "action.skip": _("Skip"),
    "action.skipHint": _("Give this image back and open the next one"),
    "action.submit": _("Submit"),
    "action.reload": _("Reload"),
    "state.saved": _("All changes saved"),
    "state.unsaved": _("Unsaved changes"),
    "state.saving": _("Saving…"),
    "mode.review": _("Review"),
    "status.new": _("New"),
    "status.in_progress": _("In progress"),
    "status.submitted": _("Submitted"),
    "status.approved": _("Approved"),
    "status.rejected": _("Rejected"),
    "status.shapes": _("{count} shapes"),
    "status.proposals": _("{count} proposals"),
    "sidebar.title": _("Annotation details"),
    "instructions.title": _("Instructions"),
    "labels.title": _("Classes"),
    "labels.search": _("Search classes (/)"),
    "labels.noMatch": _("No class matches."),
    "labels.none": _("This project has no classes yet. Ask a manager to add them."),
    "tags.title": _("Image tags"),
    "selection.title": _("Selected shape"),
    "selection.none": _("Nothing selected. Click a shape, or draw one."),
    "shape.box": _("box"),
    "shape.polygon": _("polygon"),
    "shape.points": _("points"),
    "shape.hide": _("Hide"),
    "shape.show": _("Show"),
    "shape.lock": _("Lock"),
    "shape.unlock": _("Unlock"),
    "shape.delete": _("Delete"),
    "attributes.hint": _("Tab: next attribute · [ ]: change value"),
    "shapes.title": _("Shapes"),
    "predictions.title": _("Model proposals"),
    "predictions.proposal": _("Model proposal"),
    "predictions.proposalShort": _("proposal"),
    "predictions.score": _("score {score}"),
    "predictions.accept": _("Accept"),
    "predictions.drop": _("Drop"),
    "predictions.acceptAll": _("Accept all"),
    "predictions.dropAll": _("Drop all"),
    "predictions.left": _("{count} waiting for a decision"),
    "predictions.hint": _(
        "Dashed outlines are proposals. A: accept all · Enter: accept the selected one · Delete: drop it"
    ),
    "predictions.showReference": _("Show model proposals"),
    "predictions.hideReference": _("Hide model proposals"),
    "predictions.referenceHint": _(
        "Shown faded and read-only, to compare with the submitted shapes; nothing here is added to the annotation."
    ),
    "review.title": _("Review"),
    "review.comment": _("Comment"),
    "review.commentPlaceholder": _("What should be fixed? (required to reject)"),
    "review.approve": _("Approve"),
    "review.reject": _("Reject"),
    "review.commentRequired": _("Write what should be fixed before rejecting."),
    "review.approved": _("Approved."),
    "review.rejected": _("Rejected and sent back."),
    "review.rejectedTitle": _("Sent back by the reviewer"),
    "notice.close": _("Close"),
    "notice.saved": _("Saved."),
    "notice.relabelled": _("Class changed to {label}. Ctrl+Z undoes it."),
    "notice.proposalsLeft": _(
        "{count} model proposals are neither accepted nor dropped. Submit again to leave them out."
    ),
    "draft.restored": _("Your unsaved work on this image was restored."),
    "draft.older": _("This browser holds unsaved work from an older version of this annotation."),
    "draft.restoreOlder": _("Restore it"),
    "draft.discard": _("Discard"),
    "error.stale": _(
        "Someone saved this image after you opened it. Your work is kept in this browser: reload to see their version and restore yours."
    ),
    "error.network": _(
        "The server could not be reached. Your work is kept in this browser; try again."
    ),
    "error.save": _("Not saved:"),
    "error.next": _("Could not open the next image:"),
    "error.release": _("Could not skip this image:"),
    "error.review": _("The verdict was not saved:"),
    "polygon.tooFew": _("A polygon needs at least 3 different points."),
    "polygon.noArea": _("The polygon has no area: its points lie on one line."),
    "polygon.crosses": _("The outline crosses itself. Move or remove a point."),
    "done": _("All done: no more images are waiting for you in this project."),
    "done.back": _("Back to the project"),
    "help.button": _("Keys"),
    "help.title": _("Keyboard and mouse shortcuts"),
    "help.close": _("Close"),
    "help.group.tools": _("Tools"),
    "help.group.edit": _("Editing"),
    "help.group.proposals": _("Model proposals"),
    "help.group.view": _("View"),
    "help.group.task": _("Task"),
    "help.select": _("Select, move and resize shapes"),
    "help.box": _("Draw a box: drag, or click two corners"),
    "help.polygon": _("Draw a polygon: click each point"),
    "help.points": _("Place points: click each point"),
    "help.finish": _("Finish the polygon or points"),
    "help.removeVertex": _("While drawing: remove the last point"),
    "help.cancel": _("Cancel drawing, or clear the selection"),
    "help.labelKeys": _("Choose the class of the next shape; a shape you clicked changes to it"),
    "help.attrFocus": _("Next / previous attribute of the selected shape"),
    "help.attrValue": _("Previous / next value of that attribute"),
    "help.tagKeys": _("Turn image tag 1–9 on or off"),
    "help.delete": _("Delete the selected shape"),
    "help.nudge": _("Move the selected shape 1 px (with Shift: 10 px)"),
    "help.removePoint": _("On a point of the selected polygon: remove it"),
    "help.hide": _("Hide or show the selected shape (with Shift: all shapes)"),
    "help.lock": _("Lock or unlock the selected shape"),
    "help.undo": _("Undo"),
    "help.redo": _("Redo"),
    "help.acceptOne": _("Accept the selected proposal"),
    "help.acceptAll": _("Accept all proposals"),
    "help.dropOne": _("Drop the selected proposal"),
    "help.zoomCursor": _("Zoom at the pointer"),
    "help.zoomKeys": _("Zoom in / out"),
    "help.fit": _("Fit the image to the window"),
    "help.rotate": _("Rotate the view 90° clockwise / counter-clockwise"),
    "help.pan": _("Move the image (with Select, dragging an empty spot works too)"),
    "help.search": _("Search classes"),
    "help.save": _("Save without submitting"),
    "help.submit": _("Submit and open the next image"),
    "help.approve": _("Approve and open the next image"),
    "help.help": _("Show or hide this list"),
    "help.issue": _("Pin an issue on the selected shape, or on the next click"),
    "issues.title": _("Issues"),
    "issues.open": _("{count} open"),
    "issues.pin": _("Issue {number}"),
    "issues.hint": _(
        "Press I, then click the image or a shape, to pin an issue for the annotator."
    ),
    "issues.clickToPlace": _(
        "Click where the issue is (on a shape to pin it to that shape). Esc cancels."
    ),
    "issues.comment": _("The issue's comment"),
    "issues.placeholder": _("What is wrong here?"),
    "issues.add": _("Pin issue"),
    "issues.cancel": _("Cancel"),
    "issues.added": _("Issue pinned."),
    "issues.commentRequired": _("Write what is wrong before pinning the issue."),
    "issues.resolve": _("Resolve"),
    "issues.reopen": _("Reopen"),
    "issues.resolved": _("Resolved"),
    "issues.error": _("The issue was not saved."),
    "key.space": _("Space"),
    "key.drag": _("drag"),
    "key.middleDrag": _("middle-button drag"),
    "key.wheel": _("wheel"),
    "key.doubleClick": _("double-click"),
    "key.click": _("click"),
}


def canvas_strings() -> dict[str, str]:
    """The strings in the active language, ready for the workspace config's JSON."""
    return {key: str(text) for key, text in CANVAS_STRINGS.items()}
