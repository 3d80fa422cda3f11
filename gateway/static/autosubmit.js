// Submits the page's only form (the same-origin re-POST of an upstream's answer; see gateway/signin/repost.py).
document.forms[0].submit();
