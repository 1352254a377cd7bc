// A form (or the button that sends it) with data-confirm asks before it is sent: deleting a
// class, a task, a project, revoking an invite or a token. Without JavaScript the form is sent
// as it is (the server still checks who may do it).
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
